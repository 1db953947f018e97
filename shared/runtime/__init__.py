"""Running tunegate locally: the embedded Redis server and the process supervisor behind `tunegate up`."""
