"""mmme-lab: record spontaneous micro-expression datasets with synchronised physiology.

The import package gathers the repository's top-level folders as subpackages
(``mmmelab.acquisition``, ``mmmelab.drivers``, ...). Nothing is read or started at
import time.
"""

__version__ = "0.1.0"
