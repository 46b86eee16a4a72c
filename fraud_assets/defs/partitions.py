"""Batch partitions, shared by assets and sensors. A key is a batch id: the file's stem."""

import dagster as dg

BATCHES = "batches"

batch_partitions = dg.DynamicPartitionsDefinition(name=BATCHES)
