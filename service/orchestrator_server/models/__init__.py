"""Model providers used by the orchestrator, and the development model server (`devmodel`)."""
