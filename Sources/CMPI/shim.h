// Open MPI behind a few C functions: MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros that
// Swift cannot import, so only what ACAIDistributed calls is wrapped here, with plain C types.
#pragma once
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#include <string.h>

/// MPI_Init (funneled: only the main thread calls MPI) with errors returned, not fatal, so a failed collective
/// becomes a Swift error that names the rank. Returns an MPI error code.
static inline int acai_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

static inline int acai_mpi_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized ? MPI_SUCCESS : MPI_Finalize();
}

static inline int acai_mpi_rank(void) {
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

static inline int acai_mpi_size(void) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

/// This process's rank among the processes of its node, and their number.
static inline int acai_mpi_local(int *rank, int *size) {
    MPI_Comm local;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_rank(local, rank);
    MPI_Comm_size(local, size);
    return MPI_Comm_free(&local);
}

static inline void acai_mpi_processor_name(char *out, int capacity) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) length = 0;
    if (capacity <= 0) return;
    if (length >= capacity) length = capacity - 1;
    memcpy(out, name, (size_t)length);
    out[length] = 0;
}

static inline void acai_mpi_error_string(int code, char *out, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    if (capacity <= 0) return;
    if (length >= capacity) length = capacity - 1;
    memcpy(out, text, (size_t)length);
    out[length] = 0;
}

// Non-blocking collectives on MPI_COMM_WORLD, completed by acai_mpi_test: the caller polls with a deadline,
// so a rank that stopped answering ends the job instead of hanging it.

static inline int acai_mpi_iallreduce_sum_float(float *values, int count, MPI_Request *request) {
    return MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_iallreduce_sum_double(double *values, int count, MPI_Request *request) {
    return MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_iallreduce_max_int64(long long *values, int count, MPI_Request *request) {
    return MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_ibcast_bytes(void *bytes, int count, int root, MPI_Request *request) {
    return MPI_Ibcast(bytes, count, MPI_BYTE, root, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_igather_int64(long long value, long long *all, int root, MPI_Request *request, long long *send) {
    *send = value;
    return MPI_Igather(send, 1, MPI_LONG_LONG, all, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_igatherv_bytes(const void *bytes, int count, void *all, const int *counts,
                                          const int *displacements, int root, MPI_Request *request) {
    return MPI_Igatherv(bytes, count, MPI_BYTE, all, counts, displacements, MPI_BYTE, root, MPI_COMM_WORLD, request);
}

static inline int acai_mpi_ibarrier(MPI_Request *request) {
    return MPI_Ibarrier(MPI_COMM_WORLD, request);
}

static inline int acai_mpi_test(MPI_Request *request, int *done) {
    return MPI_Test(request, done, MPI_STATUS_IGNORE);
}

static inline int acai_mpi_abort(int code) {
    return MPI_Abort(MPI_COMM_WORLD, code);
}
