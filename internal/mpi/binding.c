//go:build mpi

#include "binding.h"

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

// Elements per MPI call: MPI counts are int, so longer buffers go in pieces.
#define VK_CHUNK ((int64_t)1 << 30)

// Set by vk_request_abort from any thread; the polling loops read it.
static atomic_int vk_abort_flag;

static double vk_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static MPI_Datatype vk_type(int type) {
	switch (type) {
	case VK_FLOAT32:
		return MPI_FLOAT;
	case VK_FLOAT64:
		return MPI_DOUBLE;
	default:
		return MPI_BYTE;
	}
}

int vk_init(vk_world *w) {
	// MPI libraries install SIGSEGV, SIGBUS, SIGFPE or SIGABRT handlers for
	// backtraces, without SA_ONSTACK. Over Go's they would turn nil-pointer
	// panics into crashes, and run on a goroutine's small stack. Open MPI 4
	// keeps a handler already there (Go's) but installs its own where none
	// is; put back whatever MPI_Init changed, whichever library it is.
	struct sigaction saved[65];
	memset(w, 0, sizeof *w);
	for (int s = 1; s < 65 && s < NSIG; s++) {
		sigaction(s, NULL, &saved[s]);
	}
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &w->provided);
	for (int s = 1; s < 65 && s < NSIG; s++) {
		struct sigaction now;
		if (s == SIGKILL || s == SIGSTOP || sigaction(s, NULL, &now) != 0) {
			continue;
		}
		if (now.sa_handler != saved[s].sa_handler || now.sa_flags != saved[s].sa_flags) {
			sigaction(s, &saved[s], NULL);
			w->restored |= (uint64_t)1 << (s - 1);
		}
	}
	if (rc != MPI_SUCCESS) {
		w->call = "MPI_Init_thread";
		return rc;
	}
	if (w->provided < MPI_THREAD_FUNNELED) {
		w->call = "MPI_Init_thread";
		return VK_THREADS;
	}
	// Errors come back as codes for the Go side to report, instead of
	// MPI's default of aborting the job from inside the call.
	if ((rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_set_errhandler";
		return rc;
	}
	if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &w->rank)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_rank";
		return rc;
	}
	if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &w->size)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_size";
		return rc;
	}
	// Key 0 for all: the local ranks keep the world ranks' order.
	MPI_Comm node;
	if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_split_type";
		return rc;
	}
	MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
	if ((rc = MPI_Comm_rank(node, &w->local_rank)) != MPI_SUCCESS ||
	    (rc = MPI_Comm_size(node, &w->local_size)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_rank/size on the node communicator";
		return rc;
	}
	if ((rc = MPI_Comm_free(&node)) != MPI_SUCCESS) {
		w->call = "MPI_Comm_free";
		return rc;
	}
	return VK_OK;
}

int vk_finalize(void) { return MPI_Finalize(); }

// vk_wait polls req until it completes, the deadline passes (0: none) or an
// abort is requested. On VK_TIMEOUT and VK_ABORTED the request is left
// running: cancelling a collective is not allowed, and the job is to abort.
static int vk_wait(MPI_Request *req, double deadline, const char **call) {
	double start = vk_now();
	for (;;) {
		int done = 0;
		int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
		if (rc != MPI_SUCCESS) {
			*call = "MPI_Test";
			return rc;
		}
		if (done) {
			return VK_OK;
		}
		if (atomic_load_explicit(&vk_abort_flag, memory_order_relaxed)) {
			return VK_ABORTED;
		}
		double t = vk_now();
		if (deadline > 0 && t >= deadline) {
			return VK_TIMEOUT;
		}
		// Past the first 100 us, offer the core to others between polls:
		// sched_yield returns at once when nothing else wants it, and when
		// ranks share cores it lets the rank we wait for run.
		if (t - start > 1e-4) {
			sched_yield();
		}
	}
}

static double vk_deadline(double timeout_s) { return timeout_s > 0 ? vk_now() + timeout_s : 0; }

int vk_allreduce_sum(void *buf, int64_t count, int type, double timeout_s, const char **call) {
	double deadline = vk_deadline(timeout_s);
	MPI_Datatype t = vk_type(type);
	int esize;
	MPI_Type_size(t, &esize);
	int64_t off = 0;
	do {
		int n = (int)(count - off < VK_CHUNK ? count - off : VK_CHUNK);
		char *p = buf ? (char *)buf + off * esize : NULL;
		MPI_Request req;
		int rc = MPI_Iallreduce(MPI_IN_PLACE, p, n, t, MPI_SUM, MPI_COMM_WORLD, &req);
		if (rc != MPI_SUCCESS) {
			*call = "MPI_Iallreduce";
			return rc;
		}
		if ((rc = vk_wait(&req, deadline, call)) != VK_OK) {
			return rc;
		}
		off += n;
	} while (off < count);
	return VK_OK;
}

int vk_bcast(void *buf, int64_t count, int type, int root, double timeout_s, const char **call) {
	double deadline = vk_deadline(timeout_s);
	MPI_Datatype t = vk_type(type);
	int esize;
	MPI_Type_size(t, &esize);
	int64_t off = 0;
	do {
		int n = (int)(count - off < VK_CHUNK ? count - off : VK_CHUNK);
		char *p = buf ? (char *)buf + off * esize : NULL;
		MPI_Request req;
		int rc = MPI_Ibcast(p, n, t, root, MPI_COMM_WORLD, &req);
		if (rc != MPI_SUCCESS) {
			*call = "MPI_Ibcast";
			return rc;
		}
		if ((rc = vk_wait(&req, deadline, call)) != VK_OK) {
			return rc;
		}
		off += n;
	} while (off < count);
	return VK_OK;
}

int vk_barrier(double timeout_s, const char **call) {
	MPI_Request req;
	int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
	if (rc != MPI_SUCCESS) {
		*call = "MPI_Ibarrier";
		return rc;
	}
	return vk_wait(&req, vk_deadline(timeout_s), call);
}

void vk_error_string(int code, char *out, int cap) {
	char s[MPI_MAX_ERROR_STRING];
	int n = 0;
	if (code == VK_THREADS) {
		snprintf(out, cap, "the library gives less than MPI_THREAD_FUNNELED");
		return;
	}
	if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) {
		snprintf(out, cap, "unknown MPI error");
		return;
	}
	snprintf(out, cap, "%.*s", n, s);
}

void vk_request_abort(void) { atomic_store(&vk_abort_flag, 1); }

void vk_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
