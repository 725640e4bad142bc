// Debian's libopenblas-dev (pthread variant). pkg-config `openblas` supplies the include path.
#include <cblas.h>
