"""Developer tools (run as scripts): the ComfyUI and browser checks, the example workflows, the README picture, the GPU check."""
