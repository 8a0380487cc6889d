// The C half of the MPI binding: every MPI call the Go side makes, so that
// MPI's macros (MPI_FLOAT, MPI_COMM_WORLD, ...) never cross into Go, and the
// polling loops run without a cgo call per MPI_Test.
#ifndef VKGAN_MPI_BINDING_H
#define VKGAN_MPI_BINDING_H

#include <stdint.h>

// Results besides MPI's own error codes, which are positive.
enum { VK_OK = 0, VK_TIMEOUT = -1, VK_ABORTED = -2, VK_THREADS = -3 };

// Element types; the Go side's dtype has the same values.
enum { VK_FLOAT32 = 0, VK_FLOAT64 = 1, VK_BYTE = 2 };

typedef struct {
	int rank, size;
	int local_rank, local_size;
	int provided;      // the thread level MPI gave
	uint64_t restored; // bit s-1 set: MPI_Init replaced signal s's handler and it was put back
	const char *call;  // the MPI call that failed, when vk_init does not return VK_OK
} vk_world;

int vk_init(vk_world *w);
int vk_finalize(void);
int vk_allreduce_sum(void *buf, int64_t count, int type, double timeout_s, const char **call);
int vk_bcast(void *buf, int64_t count, int type, int root, double timeout_s, const char **call);
int vk_barrier(double timeout_s, const char **call);
void vk_error_string(int code, char *out, int cap);
void vk_request_abort(void);
void vk_abort(int code);

#endif
