import sys
from pathlib import Path

# lets the test modules here import the shared `scenes` helper
sys.path.insert(0, str(Path(__file__).parent))
