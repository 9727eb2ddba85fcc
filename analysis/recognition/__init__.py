"""Recognition: the samples' protocols (LOSO, subject k-fold, the leak guard), the
metrics (pooled and per fold, no class dropped), and the paper's weighted-vote fusion."""
