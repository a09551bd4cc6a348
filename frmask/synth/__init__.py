"""Synthetic face masks drawn from facial landmarks, deterministically.

Modules: ``template`` (the MaskTemplate type), ``shapes`` (built-in surgical/n95/kn95/cloth masks and their nose
coverage levels, drawn with ``drawing``), ``maskinv`` (the MaskInv template and its bit-exact legacy renderer),
``masktheface`` (MaskTheFace folders), ``render`` (homography or piecewise-affine warp, shading-preserving colour
blend), ``colors`` (palettes, named colours and the published colour-file format), ``seeding`` (per-image random
generators) and ``fastrng`` (the same draws for many images at once, bit for bit), ``template_cache`` (prepared
templates kept on disk between runs), ``benchmark`` (masked ``.bin`` benchmarks), ``folder`` (masked image
folders) and ``preview`` (their contact sheets). The ``frmask synth`` command drives ``benchmark`` and ``folder``.
"""
