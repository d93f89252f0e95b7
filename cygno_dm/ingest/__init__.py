"""The DAQ uploader: discover run files, checksum, upload, register, replicate, and delete only when safe."""
