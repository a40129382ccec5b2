// ember::compiled: stb's image codecs and format::decode_image / encode_png, defined once here (EMBER_LIB_INLINE
// is empty in compiled mode), so that a program linking the library never compiles stb.
#include <ember/format/image_stb.hpp>
