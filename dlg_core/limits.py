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
MAX_CLASSES = 1000
MAX_SECONDS = 300.0  # wall-time budget of one run
MAX_CONFIG_BYTES = 16 * 1024  # a config JSON, and a link's query string


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
