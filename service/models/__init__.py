"""Model lifecycle: versions found, loaded, warmed up, batched, served and unloaded."""
