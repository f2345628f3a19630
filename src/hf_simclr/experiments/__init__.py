"""The experiment runner: grids of recipe variants (`grid`), run (`runner`), tabulated (`summary`)."""
