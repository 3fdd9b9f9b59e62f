"""Reusable Streamlit pieces of the app; the pages in ``app_pages/`` only lay them out and word them.

- ``ui.pictures``: crisp upscaling and the per-pixel error heat map (numpy only)
- ``ui.history``: one run's history in session state: every snapshot's metrics, up to 300 frames
- ``ui.photo``: the private photo: sample gallery, upload, webcam, and the client's view of it
- ``ui.settings``: the attack's settings, with defaults from ``dlg_core.config.DEFAULT``
- ``ui.link``: shareable links (a run's settings and a bundled sample's name in the URL)
- ``ui.charts``: the plotly figures
- ``ui.run_engine``: every page's live run: Run/Stop, the queue, check-ins, an interrupted run kept, paced redraws
- ``ui.attack_view``: the setting check, the live attack, the verdict, charts, downloads and the share link
- ``ui.compare_view``, ``ui.defences_view``, ``ui.experiments_view``: what the other pages show, live and after
- ``ui.stage``: the stage: the photo beside the reconstruction, paced from the starting image, then played in
  the browser (``stage_player.js``)
- ``ui.classroom``: "Show to class": a QR code and a link with an address students can reach
- ``ui.explain``: the "How it works" page's live label chart and diagram
- ``ui.style``: page-wide look (crisp pixels, spacing, the Run button, the stage, contrast)
- ``ui.host``: what a server process sets up once (thread cap, privacy), and the limits the page states
- ``ui.privacy``: uploads kept in memory, raw uploads dropped, ended sessions' images freed

Import direction: pages -> ui -> dlg_core. Nothing derived from a user's upload is ever cached, written to
disk, logged or put in a URL: it lives in that user's session state only.
"""
