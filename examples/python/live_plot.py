# %% [markdown]
# # A live chart of a running query
#
# Weir runs a windowed count over the built-in Nexmark bid stream; the notebook subscribes to
# the query and redraws a bar chart after each micro-batch it commits. Cells are marked with
# `# %%`, so Jupyter (through Jupytext), VS Code and PyCharm open this file as a notebook; as
# a script it draws the same chart into a PNG file:
#
#     python examples/python/live_plot.py --out bids.png

# %%
import argparse

import matplotlib.pyplot as plt

import weir

arguments = argparse.ArgumentParser(description=__doc__)
arguments.add_argument("--out", default="bids_per_second.png", help="the PNG to draw into")
arguments.add_argument("--events", type=int, default=120_000, help="Nexmark events to read")
options, _ = arguments.parse_known_args()

# %% The stream: 10,000 Nexmark events per second of event time, paced at 40,000 a second of
# wall time, so the query runs for about three seconds, committing a batch every 200 ms.
engine = weir.Engine()
engine.execute(
    "CREATE SOURCE bids (WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) WITH ("
    "connector = 'nexmark', table = 'bid', event_time_rate = '10000', "
    f"events_per_second = '40000', max_events = '{options.events}')"
)
query = engine.start(
    "CREATE SINK per_second WITH (connector = 'memory', output_mode = 'update', "
    "trigger = '200 milliseconds') AS "
    "SELECT window_start, count(*) AS bids, avg(price) AS avg_price "
    "FROM TUMBLE(bids, date_time, INTERVAL '1' SECOND) GROUP BY window_start, window_end"
)
feed = query.subscribe()

# %% Each batch brings the windows it changed (update mode); the chart keeps the latest count
# of every window.
figure, axes = plt.subplots(figsize=(8, 3))
bids_per_window = {}
for batch in feed:
    for row in batch.table.to_pylist():
        bids_per_window[row["window_start"]] = row["bids"]
    windows = sorted(bids_per_window)
    axes.clear()
    axes.bar([w.strftime("%H:%M:%S") for w in windows], [bids_per_window[w] for w in windows])
    axes.set_title(f"Nexmark bids per second of event time, after batch {batch.batch_id}")
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    figure.canvas.draw_idle()
    if plt.isinteractive():
        plt.pause(0.01)
    print(f"batch {batch.batch_id}: {batch.table.num_rows} windows changed", flush=True)
    # A continuous query waits for more input for ever; this one stops when the generator's
    # offset has reached the last event.
    if query.progress()["sources"][0]["endOffset"] >= options.events:
        break

# %%
query.stop()
figure.savefig(options.out)
for window in sorted(bids_per_window):
    print(f"{window.isoformat()} {bids_per_window[window]}")
