/* The parts are spliced into lmu.h now; this file stays empty until the
   last users of it include lmu.h alone. */
