"""Compare attacks: one private photo, one shared update, 2-4 attacks on it side by side, live."""

import streamlit as st

from ui import classroom, compare_view, host, link, photo, run_engine, settings

compare_view.COMPARE.settle_interrupted()
compare_view.keep_photo_source()

st.title("Compare attacks")
st.markdown("One private photo, **one shared update**, several attackers who each get exactly that update: "
            "which one rebuilds the photo, how well, and how fast?")

chosen = photo.photo_fold()
config = settings.settings_fold(choose_attack=False)
st.caption("The same setting as on the Attack lab (changed here, it changes there too). Try the CNN victim "
           "with the ReLU activation (under *The victim*): L-BFGS on the squared distance stalls there, Inverting "
           "Gradients does not. Or a trained victim, whose confident, smaller gradient gives every attack less.")
attacks, steps = compare_view.attack_choice(config.model if config else "")
ready = chosen is not None and config is not None and len(attacks) >= 2
start, _ = compare_view.COMPARE.controls(
    "Run the comparison", ready,
    run_help="The client computes its update once; every chosen attack then starts from that same update.",
    stop_help="End the comparison now and keep what every attack reached.")
host.limits_panel(run_engine.run_slots().slots)
st.caption(compare_view.ORDER_NOTE)

comparison = compare_view.COMPARE.current()
if start:
    compare_view.live_comparison(chosen, config, settings.current_label(), attacks, steps)
elif comparison is None:
    st.info("Press **Run the comparison**: the client computes its update once, then each attack takes its "
            "turn on it, live.", icon=":material/play_circle:")
else:
    st.header("4 · How they did", divider="red")
    compare_view.results_view(comparison)
    classroom.show_to_class(link.share_url({}), "compare")
