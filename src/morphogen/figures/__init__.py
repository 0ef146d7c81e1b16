"""Figure code: each module turns loaded tables and stores into a matplotlib figure and its
numbers, so a figure can be built (and tested) without the workflow."""
