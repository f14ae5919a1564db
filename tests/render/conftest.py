import sys
from pathlib import Path

# lets the test modules here import the shared `render_scenes` helper
sys.path.insert(0, str(Path(__file__).parent))
