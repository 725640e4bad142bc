// Open MPI for Swift. MPI_COMM_WORLD and the datatype handles are macros over addresses of
// library globals, which Swift cannot import: these inline functions name them once.
#include <mpi.h>

static inline int nk_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int nk_mpi_init(void) { int provided = 0; return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided); }
static inline int nk_mpi_finalize(void) { return MPI_Finalize(); }
static inline int nk_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int nk_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
static inline int nk_mpi_allgather_int(const int *send, int *recv) {
    return MPI_Allgather(send, 1, MPI_INT, recv, 1, MPI_INT, MPI_COMM_WORLD);
}
static inline int nk_mpi_allgatherv_float(const float *send, int count, float *recv, const int *counts, const int *displs) {
    return MPI_Allgatherv(send, count, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
static inline void nk_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
