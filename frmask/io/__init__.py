"""File formats: score tables, insightface ``.bin`` benchmarks, MXNet RecordIO, pair lists."""
