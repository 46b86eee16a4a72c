"""Raw batches as they land: the file format and marker, the defect classes, the landing zone."""
