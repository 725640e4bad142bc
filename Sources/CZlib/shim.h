// zlib, for the deflate-compressed members of PyTorch zip checkpoints and CRC-32 checks.
#include <zlib.h>
