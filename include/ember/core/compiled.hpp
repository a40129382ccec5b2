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

// EMBER_EXTERN_TEMPLATE(class X<float>) after a class template's definition, in its own header: in compiled
// mode an explicit instantiation declaration, so that a program including only that header takes the class
// from ember::compiled (src/compiled/ holds the definitions; extern_templates.hpp lists them); nothing
// header-only.
#if defined(EMBER_COMPILED)
#define EMBER_EXTERN_TEMPLATE(...) extern template __VA_ARGS__;
#else
#define EMBER_EXTERN_TEMPLATE(...)
#endif
