"""Analysis: runs into table rows, their statistics, tables and figures.

- `rows`: runs grouped over seeds into rows, their columns and labels;
- `stats`: Student intervals and Welch tests;
- `significance`: a row's interval and its difference from a baseline row;
- `compare`: the comparison, rows with their statistics;
- `tables`: rows as terminal cells, Markdown, CSV and JSON;
- `listing`: `invbench runs`;
- `plots`: every figure (the only module that imports matplotlib).

Nothing here imports TensorFlow.
"""
