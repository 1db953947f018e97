from services.gateway.bootstrap import build
from shared.bus.lifecycle import run_service

if __name__ == "__main__":
    run_service(build)
