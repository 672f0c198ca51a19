// Kept free of tfjs imports so that command-line code can test for it without loading TensorFlow.js.

/** The backend asked for cannot run here (not installed, no adapter): the message says what was tried. */
export class BackendUnavailableError extends Error {}
