"""The evaluations' defaults, in the one place both the library functions and the command line read them (this
module imports nothing, so the CLI shows them without loading torch)."""

SPLIT = "validation"  # evaluations never score the training split
PG19_PROTOCOL = "longlora"  # a window every 256 tokens, scored on its last 256 (LongLoRA's evaluation)
BATCH_SIZE = 1
RULER_SAMPLES = 500  # RULER's own count per task and length
RULER_SEED = 42
HARNESS_SEED = 1234  # lm-eval's default
