raise RuntimeError("loaded from above the confcutdir: the runs of this layout keep it out")
