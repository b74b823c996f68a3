/* vib_mpi.h - libvib-mpi: data-parallel training of libvib models over MPI.
 *
 * A small library beside libvib (libvib itself knows nothing of MPI): it gives a
 * vib_trainer the reduction and the shard of vib_trainer_set_reduce / set_shard over an
 * MPI communicator, and the collective calls a data-parallel run needs around it.
 * Link with `pkg-config --cflags --libs libvib-mpi` (libvib and MPI come with it).
 *
 * Conventions (those of vib.h):
 *  - Status: functions return VIB_OK (0) or a negative VIB_ERR_* code. On failure
 *    vib_mpi_last_error() gives a message for the calling thread; when a collective call
 *    fails because of one rank, every rank gets that rank's status and message.
 *  - Collective: every function taking a communicator or a vib_mpi (not
 *    vib_mpi_last_error) must be called by every rank of the communicator, in the same
 *    order, like any MPI collective. They call MPI from the calling thread only (libvib's
 *    OpenMP threads never do), so MPI_THREAD_SINGLE or FUNNELED suffices, except with
 *    vib_mpi_set_overlap's communication thread (SERIALIZED); MPI must be initialized.
 *  - MPI errors: the library works on its own duplicate of the communicator, with
 *    MPI_ERRORS_RETURN, so an MPI error in a step is a status (VIB_ERR_IO), not an abort.
 *    That holds for an error every rank sees (a communicator gone bad); an error that
 *    one rank alone sees in the middle of a reduction leaves its neighbours waiting for
 *    messages it will not send, as in any MPI program: MPI's state after an error is
 *    undefined, so no library can promise to continue past one. Run long jobs under
 *    the batch system's time limit (or `timeout`), and resume from a checkpoint.
 *    vib_mpi_agree, vib_mpi_broadcast_params and vib_mpi_save use the caller's
 *    communicator as it is: under MPI's default handler, an MPI error there aborts.
 *  - Failure on one rank: a rank that fails alone (a bad data path, a bad label) must not
 *    leave the others waiting in the next collective. The library's calls agree on a
 *    status before they return (vib_mpi_agree), so every rank returns the same status,
 *    the first failing rank's; a program stops when a call fails, on every rank at once:
 *
 *        int rc = vib_mpi_agree(load_my_data(rank, &x, &y), MPI_COMM_WORLD);
 *        for (int s = 0; rc == VIB_OK && s < steps; s++)
 *            rc = vib_mpi_step(ctx, x, y, NULL, NULL, NULL);
 *        if (rc != VIB_OK) fprintf(stderr, "%s\n", vib_mpi_last_error());
 *
 *    Steps must go through vib_mpi_step / vib_mpi_epoch (not vib_trainer_step directly),
 *    which meet the other ranks' reduction when this rank fails before reaching it.
 */
#ifndef VIB_MPI_H
#define VIB_MPI_H

#include <mpi.h>
#include <vib.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VIB_MPI_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define VIB_MPI_API __attribute__((visibility("default")))
#else
#define VIB_MPI_API
#endif
#endif

/* A trainer attached to a communicator: the library's context (its duplicate of the
 * communicator and the step's bookkeeping). */
typedef struct vib_mpi vib_mpi;

/* The calling thread's message of its last failed vib_mpi_* call ("" if none). */
VIB_MPI_API const char *vib_mpi_last_error(void);

/* Every rank passes its status; every rank returns the status of the lowest rank whose
 * status is not VIB_OK (VIB_OK if none), and that rank's message becomes every rank's
 * vib_mpi_last_error(): its vib_last_error() (so a status from a libvib call carries its
 * reason; after a failed vib_mpi_* call, pass that call's status to the ranks through
 * vib_mpi_step/epoch, which agree themselves). One MPI_Allreduce (MINLOC over two ints),
 * plus one broadcast
 * of the message when a rank failed. An MPI error is VIB_ERR_IO. */
VIB_MPI_API int vib_mpi_agree(int status, MPI_Comm comm);

/* Attach trainer to comm (collective): the trainer becomes worker `rank` of `size`
 * (vib_trainer_set_shard) with the library's reduction (vib_trainer_set_reduce): the sum
 * of the workers' gradients, the same bits on every rank. The sum is a ring allreduce
 * over MPI_Sendrecv: a reduce-scatter, in which each of the P chunks of the gradient is
 * summed at one rank, in a fixed order, then an allgather that passes the summed chunks
 * round the ring as they are. An MPI_Allreduce does not promise every rank the same bits
 * (its algorithms may add in a different order on different ranks); sums made once and
 * copied do. Its cost: each rank sends and receives 2 (P - 1) / P of the n floats, the
 * least an allreduce can, in 2 (P - 1) steps (in messages of at most 4 MiB, through a
 * 4 MiB buffer of the context's), plus one two-int allreduce per step (the ranks'
 * agreement that all reached the reduction; see vib_mpi_step). The trainers must be built alike on every rank (same n,
 * batch, seed, and models of the same weights and seed: vib_mpi_broadcast_params), and
 * size must not exceed the batch. *out receives the context, freed by vib_mpi_detach
 * (before MPI_Finalize), which the trainer must outlive. Checks: comm MPI_COMM_NULL or
 * MPI not initialized (VIB_ERR_INVALID_ARG, at once: nothing collective is done); then,
 * agreed over the ranks, trainer or out NULL (VIB_ERR_INVALID_ARG), the context
 * (VIB_ERR_NOMEM), the communicator's duplicate (VIB_ERR_IO), set_shard's checks. On
 * failure nothing is allocated, *out is not written and the trainer is as it was
 * (except when trainers are built unalike, so that set_shard succeeds on some ranks and
 * not others: those ranks are then set back to one process, no reduction). */
VIB_MPI_API int vib_mpi_attach(vib_trainer *trainer, MPI_Comm comm, vib_mpi **out);

/* Set the trainer back to one process (shard 0 of 1, no reduction), free the
 * communicator's duplicate (collective) and the context. NULL: nothing. */
VIB_MPI_API void vib_mpi_detach(vib_mpi *ctx);

/* vib_trainer_step / vib_trainer_epoch of the attached trainer, such that a rank failing
 * before the reduction (bad x or labels, a non-finite loss on its rows) makes the step
 * fail on every rank: each rank's reduction first agrees with the others that all
 * reached it (one two-int allreduce); a rank whose step failed before joins that
 * agreement with its failure instead, and the others' steps fail (their reduction
 * returns nonzero). A failed step changes nothing on any rank (vib_trainer_step), so the
 * ranks stay in step. Then every rank returns the status and message of the lowest rank
 * that failed for a cause of its own (vib_mpi_agree), e.g. VIB_ERR_INVALID_ARG with
 * "rank 1: vib_trainer_step: ..." on every rank; an MPI error is VIB_ERR_IO. ce, kl,
 * loss are this rank's rows' means, as vib_trainer_step's. With vib_mpi_epoch, a
 * training callback's decision to stop must be the same on every rank (decide from the
 * step count, or agree on it), or the ranks part. */
VIB_MPI_API int vib_mpi_step(vib_mpi *ctx, const float *x, const int32_t *labels, double *ce,
                             double *kl, double *loss);
VIB_MPI_API int vib_mpi_epoch(vib_mpi *ctx, const float *x, const int32_t *labels,
                              double *ce, double *kl, double *loss);

/* Overlap the gradient's reduction with the backward pass (on nonzero), or not (0, as
 * attached), on every rank alike (collective). On: the trainer hands each layer's
 * gradient to the reduction as soon as the backward pass has finished it
 * (vib_trainer_set_reduce_overlap), and a communication thread of the library's sums it
 * (the ring of vib_mpi_attach over that layer's range: the same bits on every rank;
 * against the sum at once, the same numbers added from other chunk boundaries, so equal
 * to float rounding) while the training thread computes the layers below; the step
 * waits for the last layer's sum before the optimizer step.
 * That thread makes every MPI call of a step's reduction while the training thread
 * makes none, so MPI must give MPI_THREAD_SERIALIZED or more (MPI_Init_thread), and the
 * program must not call MPI from another thread during vib_mpi_step / vib_mpi_epoch (its
 * training callback runs between steps, when the thread is idle). Errors, agreed over
 * the ranks, with nothing changed on any rank: ctx NULL (VIB_ERR_INVALID_ARG, at once,
 * nothing collective is done), the ranks disagreeing on `on` or a thread level below
 * SERIALIZED (VIB_ERR_INVALID_ARG), the thread not started (VIB_ERR_NOMEM); an MPI error
 * is VIB_ERR_IO on the ranks that see it (see "MPI errors" above). Whether it pays, and where: docs/scaling.md. */
VIB_MPI_API int vib_mpi_set_overlap(vib_mpi *ctx, int on);

/* Rank 0's parameters (vib_model_params) into every rank's model (collective). The
 * models must have the same number of parameters: checked (rank 0's count broadcast),
 * VIB_ERR_INVALID_ARG on every rank otherwise; VIB_ERR_NOMEM for the receiving buffer;
 * VIB_ERR_IO for an MPI error. Nothing is written unless every rank got the values. */
VIB_MPI_API int vib_mpi_broadcast_params(vib_model *model, MPI_Comm comm);

/* Rank 0 writes trainer's checkpoint to path (vib_trainer_save; the ranks' trainers hold
 * the same state), and broadcasts its status and message: every rank returns the same
 * status. Other ranks do not read trainer or path. A checkpoint holds no topology: it
 * resumes in any number of ranks, or in one process (each rank calls vib_trainer_load,
 * then vib_mpi_agree on the statuses). */
VIB_MPI_API int vib_mpi_save(const vib_trainer *trainer, const char *path, MPI_Comm comm);

#ifdef __cplusplus
}
#endif

#endif /* VIB_MPI_H */
