"""The stages of an import (see `ckptdb.importer`, their one orchestration and the public entry
points): `scan`, `parse`, `decide`, `write`, `report`, with the types they hand on (`candidate`,
`outcomes`, `options`) and the one place that looks into rows (`row_access`)."""
