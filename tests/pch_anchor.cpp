// Gives the shared precompiled header a translation unit to be built with (doctest_main.cpp skips it).
