"""The demand series: gold's day × category grid and its estimated counts, which days were
observed and complete, quantification (counting the postings without a category), the
forecast and its backtest, category drift, and the figures."""
