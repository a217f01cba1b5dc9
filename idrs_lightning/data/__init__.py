"""Data: raw sources (vision data sets, scikit-learn digits, the paper's synthetic data sets of
Appendix A.1 and A.5) as arrays in the space where the smoothing noise is added, and fixed
class-stratified subsets for evaluation.
"""
