// OpenSSL's libcrypto, for SHA-256 of checkpoint files: it uses the CPU's SHA extensions
// (SHA-NI), about ten times the speed of portable code, so checksumming a source while baking
// costs no wall time.
#include <openssl/evp.h>
