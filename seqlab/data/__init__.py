"""The parts that data modules are assembled from, each with one job and no Lightning state: where the splits are
(``sources``), one reader per file format (``readers``, ``utterances``), the bad-row policy (``policy``), rows in
``datasets`` tables (``rows``), the sentences of token classification and the batch parts made from their tokens
(``token_rows``), the bucketing and document samplers and the resumable loader (``sampler``, ``loader``), how the
training split is held (``streaming``) and the transformer inputs (``transformer``). The task data modules in
``seqlab.data_modules`` declare which of them they use."""
