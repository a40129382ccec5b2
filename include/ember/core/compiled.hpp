#pragma once
// EMBER_LIB_INLINE marks a function that header-only use defines inline in every translation unit, and that
// compiled mode (EMBER_COMPILED, defined by the ember::compiled target) defines once, in the library: there the
// headers declare it, and only src/compiled/ includes its definition. Used where the definition would bring a
// heavy dependency into every program (stb's codecs: format/image_stb.hpp).
#if defined(EMBER_COMPILED)
#define EMBER_LIB_INLINE
#else
#define EMBER_LIB_INLINE inline
#endif
