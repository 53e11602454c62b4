"""CSV imports: a file checked row by row, previewed, then submitted as commands."""
