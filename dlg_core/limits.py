"""Every limit that protects a shared host, in one place: the UI states them, the CLI and loaders enforce them."""

import os

MAX_UPLOAD_MB = 10  # also .streamlit/config.toml's server.maxUploadSize
MAX_FILE_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_PIXELS = 40_000_000  # decoded width x height; Pillow's own bomb guard stays on as well
MIN_SIDE = 8  # a photo smaller than this on either side has nothing to leak
MAX_ASPECT = 20  # a 10000x10 strip is not a photo we can centre-crop meaningfully

MIN_SIZE, MAX_SIZE = 16, 128  # square resolution the victim sees
MAX_STEPS = 5000
MAX_BATCH = 8  # photos in one run (the CLI's repeated --image; the app attacks one photo)
# The malicious server's imprint attack reads a batch off in closed form (no optimisation), so it may take more:
# its cost is one gradient of the imprinted model, whose block holds at most MAX_IMPRINT_WEIGHTS numbers.
MAX_IMPRINT_BATCH = 64
MAX_IMPRINT_WEIGHTS = 16_000_000  # the imprint block's bins x pixels (64 MB, and as much for its gradient)
MAX_CLIENTS = 64  # clients whose updates the server aggregates (each has at least one of the run's photos)
MAX_CLASSES = 1000
MAX_SECONDS = 300.0  # wall-time budget of one run
MAX_CONFIG_BYTES = 16 * 1024  # a config JSON, and a link's query string


def max_batch(attack: str) -> int:
    """Photos in one run for this attack (declared with it: the imprint attack takes a larger batch)."""
    from .attack_registry import get  # lazily: the registry reads this module's limits

    return get(attack).max_batch


def batch_problem(attack: str, photos: int) -> str | None:
    """Why a run of ``attack`` cannot take this many photos, in one line (None if it can)."""
    from .attack_registry import largest_batch

    most, largest = max_batch(attack), largest_batch()
    if 1 <= photos <= most:
        return None
    extra = f" (the {largest.name} attack takes up to {largest.max_batch})" if most < largest.max_batch else ""
    return f"A run of {attack} attacks 1 to {most} photos at once, not {photos}{extra}."


def _slots_from_env() -> int:
    text = os.environ.get("DLG_RUN_SLOTS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else (os.cpu_count() or 1)


# Many users at once (the app). Attacks running at the same time in one server process: one per core by
# default, the rest wait in a queue, first come first served; DLG_RUN_SLOTS=n sets it for a host whose
# cores are shared with other work.
RUN_SLOTS = _slots_from_env()
# Torch threads of one run in the app. torch.set_num_threads is process-wide, and N runs at once on N cores
# are fastest with one thread each (for these tiny models one thread is often faster than two anyway).
THREADS_PER_RUN = 1
