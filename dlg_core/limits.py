"""Every limit that protects a shared host, in one place: the UI states them, the CLI and loaders enforce them."""

MAX_UPLOAD_MB = 10  # also .streamlit/config.toml's server.maxUploadSize
MAX_FILE_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_PIXELS = 40_000_000  # decoded width x height; Pillow's own bomb guard stays on as well
MIN_SIDE = 8  # a photo smaller than this on either side has nothing to leak
MAX_ASPECT = 20  # a 10000x10 strip is not a photo we can centre-crop meaningfully

MIN_SIZE, MAX_SIZE = 16, 128  # square resolution the victim sees
MAX_STEPS = 5000
MAX_BATCH = 8
MAX_CLASSES = 1000
MAX_SECONDS = 300.0  # wall-time budget of one run
MAX_CONFIG_BYTES = 16 * 1024
