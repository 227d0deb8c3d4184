"""Sequential next-item families: GRU4Rec, SASRec and the first-order Markov baseline."""

from recsys_models.sequential.gru4rec import GRU4Rec, GRU4RecConfig
from recsys_models.sequential.markov import Markov, MarkovConfig
from recsys_models.sequential.sasrec import SASRec, SASRecConfig

__all__ = ["GRU4Rec", "GRU4RecConfig", "Markov", "MarkovConfig", "SASRec", "SASRecConfig"]
