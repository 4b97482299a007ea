package bo.comteco.otsync;

/**
 * Told how a sync goes, on the syncing thread, without the handle's lock: it may call the
 * client (record, list, cancel). A listener that throws stops the sync, and {@link
 * OtsyncClient#sync} rethrows what it threw.
 */
@FunctionalInterface
public interface ProgressListener {
    /**
     * @return true to go on, false to stop the sync as {@link OtsyncClient#cancel} does ({@link
     *     OtsyncException#CANCELLED}, nothing lost)
     */
    boolean onProgress(SyncProgress progress);
}
