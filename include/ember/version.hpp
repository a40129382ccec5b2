#pragma once
// ember's version, following semantic versioning (see CHANGELOG.md).
#define EMBER_VERSION_MAJOR 0
#define EMBER_VERSION_MINOR 2
#define EMBER_VERSION_PATCH 0
#define EMBER_VERSION_STRING "0.2.0"

namespace ember {
inline constexpr const char* version() { return EMBER_VERSION_STRING; }
}  // namespace ember
