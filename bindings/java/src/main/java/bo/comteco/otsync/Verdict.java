package bo.comteco.otsync;

/** The verdict of a scanned serial against the OT's expected equipment (otsync_verdict). */
public enum Verdict {
    /** Expected on this OT, first time recorded. */
    MATCHED,
    /** Not on the expected list: recorded anyway. */
    UNEXPECTED,
    /** This serial was already recorded on this OT. */
    ALREADY_RECORDED;

    static Verdict of(int value) {
        switch (value) {
        case 0:
            return MATCHED;
        case 1:
            return UNEXPECTED;
        case 2:
            return ALREADY_RECORDED;
        default:
            throw new OtsyncException(OtsyncException.INTERNAL, "unknown verdict " + value);
        }
    }
}
