"""Pure-TensorFlow triangle rasterizer backend "tf": the TF-Graphics kernel's coverage and depth test, XLA-ready.

It reproduces `rasterize_triangles_impl.cc` of tensorflow-graphics 2021.12.3 (the "tfg" backend) bit for bit:

* Coverage uses the kernel's 2-D homogeneous edge functions in 16.16 fixed point (int64): clip coordinates and
  pixel-centre NDC are truncated to fixed point, the unnormalised inverse of the corner matrix is formed from exact
  integer products, and (culling off) multiplied in place by a float sign, which rounds each coefficient to float32
  precision exactly as the kernel's `m_inv[i] *= multiplier` does. A pixel centre is covered when all three edge
  values are >= 0 and one is > 0: a centre exactly on an edge shared by two triangles is covered by both (see
  "Ties").
* Depth is z_ndc = clip_z / clip_w from float32 barycentrics in the kernel's order of operations (each product
  rounded; XLA is kept from contracting them into FMAs); fragments outside [-1, 1] are dropped (near and far
  clipping) and one at exactly z_ndc = 1 never wins (the kernel's clear depth).
* The z-test keeps, per pixel, the smallest (z_ndc, triangle id). The kernel keeps the first triangle in its
  iteration order with strictly smaller z, which is the same fragment. Depth goes into the high word of an int64
  key (order-preserving float bits) and the id into the low word, so one scatter-min does the whole z-test.

Ties: a pixel centre on a shared edge or vertex goes to the triangle with the smaller float32 depth there and, on
equal depth, to the lower id, as in the kernel (tests/test_rasterizer_tf.py checks an unrotated grid, where every
pixel centre is a mesh vertex, id for id).

Candidates: each triangle is tested only at the pixel centres its fixed-point corners can bound (`_vertex_bounds`;
this lies inside the kernel's own bounding box), and within that box only along its row spans: no row of a triangle
holds more covered centres than its widest horizontal chord allows (`_span_widths`), and each row starts at the first
centre right of the edges that bound it from the left (`_row_starts`, from the exact fixed-point edge values). So the
work follows the triangles' areas, not their boxes: a sliver across the image (a depth map seen edge-on) costs its
length, not its length squared (the bench's edge-on scene: 4.9x fewer candidates than the boxes hold). Very thin
triangles (smallest angle's sine below 1e-3) and those with a corner the box cannot use keep the whole box.
Differences from the kernel, none of which changes the result for
clip-space input from `rasterizer.clip_space`: a triangle crossing the near plane is tested against the whole image
(the kernel bounds it by its edges' near-plane intersections; the depth test rejects the rest), and a corner with
0 < w < 2^-16 does not narrow the box. Degenerate input (NaN or inf coordinates, or products of clip coordinates
beyond ~2^15, where the kernel's fixed-point arithmetic overflows) gives unspecified ids, as in the kernel.

Static shapes: candidate counts (rows times span width) of all B * F (image, triangle) instances are computed, the
non-empty ones compacted (on a rotated 64x64 grid mesh about 60% of the triangles hold no pixel centre), and their
candidates enumerated through the cumulative counts: a `tf.while_loop` takes `chunk` candidates per iteration from
at most chunk / k consecutive instances (k by the scene: 1 when dense, 8 for slivers), sets those up once and tests
every candidate. Nothing is ragged, so the backend compiles under XLA (`jit_compile=True`) and runs on CPU, GPU and
TPU (it uses int64 arithmetic, which XLA emulates on TPU). It is meant to run compiled: `triangle_ids` compiles it
by default even when called eagerly or from a graph that is not compiled (`jit_compile=False` traces it with plain
ops, for exports), and inside an XLA-compiled caller it is inlined. Either way it is one graph function per shape,
traced once and called from every graph that rasterizes. Without XLA it is correct but several times
slower than the kernel on CPU (many small ops; TensorFlow's scatter-min is single-threaded).
"""

import functools

import numpy as np
import tensorflow as tf

from pdr_tf import graph

FRACTIONAL_BITS = 16
_ONE = float(1 << FRACTIONAL_BITS)
_EMPTY = np.iinfo(np.int64).max
DEFAULT_CHUNK = 65536  # fastest on the 2-core CI CPU for the 64x64 grid mesh at batch 64
# An iteration sets up at most chunk / k triangles, k chosen per scene from its candidates per non-empty triangle:
# a smooth grid mesh has about one (each triangle holds at most a pixel centre or two), so k = 1 keeps the lanes
# busy; slivers of a mesh seen edge-on hold ~18, and setting up chunk triangles for the ~chunk / 18 an iteration
# reaches wastes most of its work. Measured on the 2-core CI CPU, batch 32 of the training step's scenes, with
# k = 1, 2, 4, 8, 16: smooth 22, 28, 39 ms; edge-on 124 (k = 4), 113 (8), 122 (16) ms.
_DENSE_INSTANCES_PER_CHUNK = 1
_SPARSE_INSTANCES_PER_CHUNK = 8
_SPARSE_CANDIDATES_PER_INSTANCE = 4  # a scene with at least this many candidates per non-empty triangle is sparse


def pixel_centres_fixed(size: int) -> np.ndarray:
  """[size] int64 fixed-point NDC of pixel centres, computed in float32 exactly as the kernel does."""
  index = np.arange(size, dtype=np.float32)
  ndc = (index + np.float32(0.5)) / np.float32(0.5 * size) - np.float32(1.0)
  return np.trunc(ndc * np.float32(_ONE)).astype(np.int64)


def _to_fixed(values):
  """float32 -> int64 16.16 fixed point, truncating toward zero like the kernel's static_cast."""
  return tf.cast(values * _ONE, tf.int64)


def _min3(v):
  return tf.minimum(tf.minimum(v[0], v[1]), v[2])


def _max3(v):
  return tf.maximum(tf.maximum(v[0], v[1]), v[2])


def _projected(coord, q_w, size):
  """Pixel coordinate (centres at integers) of the fixed-point vertex along one axis; q_w: its fixed-point w."""
  return (tf.cast(_to_fixed(coord), tf.float32) / _ONE / q_w + 1.0) * (0.5 * size) - 0.5


def _margin(size):
  """Pixels by which a fixed-point vertex, pixel centre or edge may lie from its float32 image (see _vertex_bounds)."""
  return size * 2.0**-FRACTIONAL_BITS + 1e-3


def _vertex_bounds(vertices, height, width):
  """Per-vertex pixel ranges whose mins and maxes over a triangle's corners give its box of candidate pixels.

  Along each axis, a vertex in front of the near plane bounds the pixel centres [first, end) with first =
  ceil(p - margin), end = floor(p + margin) + 1, clamped to [0, size], p being the projected fixed-point vertex in
  pixel units (centres at integers). The fixed-point inside test is exact for the fixed-point triangle at the
  fixed-point pixel centre, so when all three fixed-point w are positive a covered centre lies within its corners'
  range of p; the margin covers the centres' own truncation (size/2 * 2^-16 px), float32 rounding and the kernel's
  rounding of edge coefficients to float32. Such a box lies inside the kernel's (floor and ceil of the corners'
  float pixel coordinates, the margin being below half a pixel), and ceil, floor and clamping commute with the
  min/max over corners. A vertex in front with a fixed-point w of 0 does not narrow the box (first = 0, end =
  size); one behind the near plane (or with a NaN coordinate) gets first = size, end = 0, which `_boxes`
  recognises.

  Args:
    vertices: [M, 4] float32 clip-space vertices.

  Returns:
    bounds: [M, 4] int32: first and end along columns, then along rows.
    pixels: [M, 2] float32 p along columns and rows; NaN where the vertex does not narrow the box.
  """
  x, y, z, w = tf.unstack(vertices, axis=1)
  q_w = tf.cast(_to_fixed(w), tf.float32) / _ONE  # exact float32 copies of fixed-point values
  safe_q_w = tf.where(q_w > 0.0, q_w, tf.ones_like(q_w))
  columns, pixels = [], []
  for coord, size in ((x, width), (y, height)):
    p = _projected(coord, safe_q_w, size)
    margin = _margin(size)
    visible = (w > 0.0) & (z >= -w) & ~tf.math.is_nan(coord / w)
    tight = visible & (q_w > 0.0)
    first = tf.clip_by_value(tf.math.ceil(p - margin), 0.0, float(size))
    end = tf.clip_by_value(tf.math.floor(p + margin) + 1.0, 0.0, float(size))
    columns.append(tf.where(tight, first, tf.where(visible, 0.0, float(size))))
    columns.append(tf.where(tight, end, tf.where(visible, float(size), 0.0)))
    pixels.append(tf.where(tight, p, tf.fill(tf.shape(p), np.float32(np.nan))))
  return tf.cast(tf.stack(columns, axis=1), tf.int32), tf.stack(pixels, axis=1)


def _span_widths(pixels, index, ex, width):
  """Candidate pixels per row of each instance: its box width, or fewer where the triangle is a sliver across it.

  A triangle's widest horizontal chord runs through its middle corner and is 2 * area / (height of the triangle)
  long, so no row holds more than floor(chord) + 1 covered centres; rows are then enumerated from their own first
  possible centre (`_row_starts`), with slack for the margins on both ends. Triangles so thin that the kernel's
  float32-rounded edges could move their corners by a noticeable fraction of a pixel (smallest angle's sine below
  1e-3), and those with a corner that does not narrow the box (NaN pixels), keep the whole box.

  Args:
    pixels: [B V, 2] `_vertex_bounds` pixel positions.
    index: [N, 3] int32 vertex ids of the instances' corners.
    ex: [N] int32 box widths (`_boxes`).

  Returns:
    [N] int32 in [0, ex].
  """
  p = [tf.gather(pixels, index[:, k]) for k in range(3)]
  u, v = p[1] - p[0], p[2] - p[0]
  area2 = tf.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
  rise = _max3([q[:, 1] for q in p]) - _min3([q[:, 1] for q in p])
  longest2 = _max3([tf.reduce_sum(tf.square(d), axis=1) for d in (u, v, p[2] - p[1])])
  chord = area2 / tf.maximum(rise, 1e-30)
  slack = 2.0 * _margin(width) + 0.05 + 1e-3 * chord
  usable = tf.math.is_finite(chord) & (rise > 0.0) & (area2 >= 1e-3 * longest2)
  spans = tf.cast(tf.minimum(tf.math.floor(chord + slack) + 1.0, float(width)), tf.int32)
  return tf.where(usable, tf.minimum(spans, ex), ex)


def _boxes(bounds, index, height, width):
  """Pixel boxes of (image, triangle) instances from their corners' `_vertex_bounds`.

  Args:
    bounds: [B V, 4] int32 vertex bounds.
    index: [N, 3] int32 vertex ids of the instances' corners.

  Returns:
    x0, y0, ex, ey: [N] int32; the box holds the pixel centres (x0 + i, y0 + j), 0 <= i < ex, 0 <= j < ey, and
    ex = ey = 0 when it holds none.
  """
  rows = [tf.gather(bounds, index[:, k]) for k in range(3)]
  x0, x1 = _min3([r[:, 0] for r in rows]), _max3([r[:, 1] for r in rows])
  y0, y1 = _min3([r[:, 2] for r in rows]), _max3([r[:, 3] for r in rows])
  # A triangle crossing the near plane is tested against the whole image: the kernel bounds it by its edges'
  # near-plane intersections, but with `clip_space`'s depth mapping the depth test already rejects every point
  # outside the near-far slab, so only time differs. One entirely behind it is skipped, as in the kernel.
  behind = [r[:, 1] < r[:, 0] for r in rows]
  crossing = (behind[0] | behind[1] | behind[2]) & ~(behind[0] & behind[1] & behind[2])
  x0, y0 = tf.where(crossing, 0, x0), tf.where(crossing, 0, y0)
  ex = tf.maximum(tf.where(crossing, width, x1) - x0, 0)
  ey = tf.maximum(tf.where(crossing, height, y1) - y0, 0)
  empty = (ex == 0) | (ey == 0)
  return x0, y0, tf.where(empty, 0, ex), tf.where(empty, 0, ey)


def _setup(corners, opaque_zero):
  """The kernel's per-triangle set-up: fixed-point edge coefficients and corner depths, as one float32 table.

  Args:
    corners: three [N, 4] float32 clip-space corners.
    opaque_zero: see `_materialize`.

  Returns:
    [N, 16] float32; columns 3 k .. 3 k + 2 hold the coefficients (a, b, c) of edge k, integers exactly
    representable in float32, such that the edge value at a pixel centre with fixed-point NDC (PX, PY) is the int64
    a PX + b PY + c 2^16; columns 9 + 2 k and 10 + 2 k hold clip z and w of corner k; column 15 is 0.
  """
  c = {f"{name}{k}": corners[k][:, j] for k in range(3) for j, name in enumerate("xyzw")}
  fixed = {f"{n}{k}": _to_fixed(c[f"{n.lower()}{k}"]) for n in "XYW" for k in range(3)}
  # The kernel's unnormalised inverse of [[X0 X1 X2], [Y0 Y1 Y2], [W0 W1 W2]] (row k: the cross product of the
  # other two corners' (X, Y, W)). With culling off the kernel multiplies it in place by a float sign, `m *= +-1.0f`,
  # which rounds every entry to float32 precision: replicated here (it decides edge ties); it also makes float32
  # storage exact.
  a11, a12, a13 = fixed["X0"], fixed["X1"], fixed["X2"]
  a21, a22, a23 = fixed["Y0"], fixed["Y1"], fixed["Y2"]
  a31, a32, a33 = fixed["W0"], fixed["W1"], fixed["W2"]
  m = [
    a22 * a33 - a32 * a23,
    a13 * a32 - a33 * a12,
    a12 * a23 - a22 * a13,
    a23 * a31 - a33 * a21,
    a11 * a33 - a31 * a13,
    a13 * a21 - a23 * a11,
    a21 * a32 - a31 * a22,
    a12 * a31 - a32 * a11,
    a11 * a22 - a21 * a12,
  ]
  det = a11 * m[0] + a12 * m[3] + a13 * m[6]
  (sign,) = _materialize(
    [tf.where(det < 0, -tf.ones_like(det, tf.float32), tf.ones_like(det, tf.float32))], opaque_zero
  )
  columns = [tf.cast(value, tf.float32) * sign for value in m]
  columns += [corners[k][:, j] for k in range(3) for j in (2, 3)] + [tf.zeros_like(sign)]
  return tf.stack(columns, axis=1)


def _sortable(z):
  """Maps finite float32 to int32 with the same order (-0 and +0 alike)."""
  z = tf.where(tf.equal(z, 0.0), tf.zeros_like(z), z)
  bits = tf.bitcast(z, tf.int32)
  return tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, tf.constant(0x7FFFFFFF, tf.int32)), bits)


def _row_starts(setup, x0, ex, spans, row, width, height):
  """First column to test in each candidate's row: the leftmost pixel centre right of every edge that bounds the
  triangle from the left, found from the exact fixed-point edge values at the box's left column, less a margin;
  at most x0 + ex - spans, so the row's `spans` candidates stay inside the box (whole boxes start at x0).

  Args:
    setup: [C, 16] `_setup` rows; x0, ex, spans, row: [C] int32.
  """
  px0 = tf.gather(tf.constant(pixel_centres_fixed(width)), x0)
  py = tf.gather(tf.constant(pixel_centres_fixed(height)), row)
  coef = tf.cast(setup[:, :9], tf.int64)
  pixels_per_unit = 0.5 * width / _ONE  # fixed-point NDC units to pixels
  shift = tf.zeros_like(setup[:, 0])
  for k in range(3):
    a = setup[:, 3 * k]
    value = coef[:, 3 * k] * px0 + coef[:, 3 * k + 1] * py + coef[:, 3 * k + 2] * (1 << FRACTIONAL_BITS)
    # e = value + a * (PX - PX(x0)) >= 0 needs PX - PX(x0) >= -value / a where a > 0.
    needed = tf.where((a > 0.0) & (value < 0), -tf.cast(value, tf.float32) / tf.maximum(a, 1.0), 0.0)
    shift = tf.maximum(shift, needed * pixels_per_unit)
  start = tf.cast(tf.math.ceil(shift - _margin(width)), tf.int32)
  return x0 + tf.clip_by_value(start, 0, ex - spans)


def _fragment_keys(setup, face, col, row, width, height, zero):
  """Packed (depth, triangle id) z-test keys of candidate fragments, `_EMPTY` where the centre is not covered.

  Args:
    setup: [C, 16] `_setup` rows of each candidate's triangle.
    face: [C] int32 triangle ids.
    col, row: [C] int32 pixel of each candidate, inside the image.
    zero: see `_materialize`.

  Returns:
    [C] int64 keys: order-preserving depth bits in the high word, the triangle id in the low word.
  """
  px = tf.gather(tf.constant(pixel_centres_fixed(width)), col)
  py = tf.gather(tf.constant(pixel_centres_fixed(height)), row)
  coef = tf.cast(setup[:, :9], tf.int64)
  e = _materialize(
    [coef[:, 3 * k] * px + coef[:, 3 * k + 1] * py + coef[:, 3 * k + 2] * (1 << FRACTIONAL_BITS) for k in range(3)],
    zero,
  )
  p = {f"zw{k}": setup[:, 9 + 2 * k : 11 + 2 * k] for k in range(3)}
  inside = (e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0) & ((e[0] > 0) | (e[1] > 0) | (e[2] > 0))

  # The kernel rounds every operation in its order; XLA's CPU code generator contracts `a * b + c` into an FMA.
  # Passing the products through an integer xor with a zero that only exists at run time (derived from the faces
  # in another kernel) pins their rounding, so depth ties resolve bit for bit as in the kernel.
  def pin(x):
    return tf.bitcast(tf.bitwise.bitwise_xor(tf.bitcast(x, tf.int32), zero), tf.float32)

  one_over_w = tf.cast(e[0] + e[1] + e[2], tf.float32)
  b = [(tf.cast(value, tf.float32) / one_over_w)[:, None] for value in e]
  clip = pin(b[0] * p["zw0"]) + pin(b[1] * p["zw1"]) + pin(b[2] * p["zw2"])
  depth = clip[:, 0] / clip[:, 1]
  valid = inside & (depth >= -1.0) & (depth < 1.0)
  key = tf.bitwise.left_shift(tf.cast(_sortable(depth), tf.int64), tf.constant(32, tf.int64))
  return tf.where(valid, key + tf.cast(face, tf.int64), tf.constant(_EMPTY, tf.int64))


def _upper_bound(sorted_values, queries):
  """For each query, the index of the first element greater than it in an ascending int32 vector.

  A branch-free binary search: static shapes, O(q log n) work. Unrolled when the length is static (XLA then fuses
  it into one kernel instead of launching a loop of small ones).
  """
  n = tf.shape(sorted_values)[0]

  def step(lo, hi):
    mid = (lo + hi) // 2
    right = tf.gather(sorted_values, tf.minimum(mid, n - 1)) <= queries
    active = lo < hi
    return tf.where(active & right, mid + 1, lo), tf.where(active & ~right, mid, hi)

  lo, hi = tf.zeros_like(queries), tf.fill(tf.shape(queries), n)
  if sorted_values.shape[0] is None:
    lo, _ = tf.while_loop(lambda lo, hi: tf.reduce_any(lo < hi), step, (lo, hi))
    return lo
  for _ in range(int(sorted_values.shape[0]).bit_length()):
    lo, hi = step(lo, hi)
  return lo


def _materialize(values, opaque_zero):
  """Returns `values` unchanged, but computed once into memory: a fusion barrier for XLA.

  XLA fuses a value into every kernel that uses it and recomputes it there; for set-up shared by many uses that
  multiplies the work. A loop that runs zero times (XLA cannot tell, as its trip count comes from data) and whose
  body would change its state needs its initial state in memory, so its outputs are materialised.

  Args:
    values: list of int32, int64 or float32 tensors.
    opaque_zero: int32 scalar from data, 0 at run time (-1 for invalid input, which then flips every bit).
  """

  def flip(value):
    if value.dtype == tf.float32:
      return tf.bitcast(tf.bitwise.bitwise_xor(tf.bitcast(value, tf.int32), opaque_zero), tf.float32)
    return tf.bitwise.bitwise_xor(value, tf.cast(opaque_zero, value.dtype))

  _, values = tf.while_loop(
    lambda i, _: i < -opaque_zero, lambda i, v: (i + 1, [flip(x) for x in v]), (tf.constant(0), list(values))
  )
  return values


def _is_sparse(candidates, instances):
  """Whether a scene's non-empty instances hold many candidates each (slivers), which picks the loop's window."""
  return candidates >= _SPARSE_CANDIDATES_PER_INSTANCE * instances


def _zbuffer(vertices, faces, batch, height, width, chunk):
  """Rasterizes every (image, triangle) instance into a packed-key z-buffer [B * H * W] int64.

  Work is one candidate fragment per pixel centre in each row span of each triangle's tight box (no padding
  windows): candidate counts are computed for all instances, the non-empty instances compacted, and their candidates
  enumerated through the cumulative counts. An iteration takes up to `chunk` candidates from at most chunk / k
  consecutive instances, sets those instances up once and tests every candidate; k is 1 for dense scenes (about
  one candidate per non-empty instance) and 8 for sparse ones (slivers: many), see _SPARSE_INSTANCES_PER_CHUNK.

  Args:
    vertices: [B V, 4] float32 clip-space vertices.
    faces: [F, 3] int32.
  """
  num_faces = tf.shape(faces)[0]
  count = batch * num_faces
  num_vertices = tf.shape(vertices)[0] // batch
  zero = tf.bitwise.right_shift(tf.reduce_min(faces), 31)  # 0 for valid faces, unknown to the compiler
  index = tf.reshape((tf.range(batch) * num_vertices)[:, None, None] + faces[None], [-1, 3])  # [N, 3]
  bounds, pixels = _materialize(list(_vertex_bounds(vertices, height, width)), zero)
  _, _, ex, ey = _boxes(bounds, index, height, width)
  (spans,) = _materialize([_span_widths(pixels, index, ex, width)], zero)
  area = spans * ey

  # Compaction of the instances with a non-empty box (most grid-mesh triangles hold no pixel centre).
  nonempty = area > 0
  position = tf.cumsum(tf.cast(nonempty, tf.int32)) - 1
  used = position[-1] + 1
  compact = tf.tensor_scatter_nd_update(
    tf.zeros([count + 1], tf.int32), tf.where(nonempty, position, count)[:, None], tf.range(count)
  )[:count]
  end = tf.cumsum(tf.where(tf.range(count) < used, tf.gather(area, compact), 0))  # candidates of compacted 0..j
  total = end[-1]
  zbuffer = tf.fill([batch * height * width], tf.constant(_EMPTY, tf.int64))

  def candidates(s, zbuffer, window):
    # Instance `first` (compacted) holds candidate s; this iteration covers instances first .. first + window - 1
    # and candidates s .. limit - 1. Each instance after `first` starts a run of at least one candidate, so a
    # scatter of run starts and a cumulative sum give every candidate's instance in the window.
    (first,) = _materialize([_upper_bound(end, s[None])[0]], zero)
    slots = tf.minimum(first + tf.range(window), count - 1)
    run_end = tf.gather(end, slots)
    limit = tf.minimum(s + chunk, run_end[-1])
    offsets = run_end[:-1] - s  # starts of the window's instances after the first
    starts = tf.tensor_scatter_nd_add(
      tf.zeros([chunk + 1], tf.int32), tf.clip_by_value(offsets, 0, chunk)[:, None], tf.ones([window - 1], tf.int32)
    )
    local = tf.cumsum(starts[:chunk])
    # Set-up of the window's instances.
    instance = tf.gather(compact, slots)
    corner_ids = tf.gather(index, instance)
    x0, y0, box_width, _ = _boxes(bounds, corner_ids, height, width)
    setup = _setup([tf.gather(vertices, corner_ids[:, k]) for k in range(3)], zero)
    run_start = run_end - tf.gather(area, instance)
    table = tf.stack([run_start, x0, y0, tf.gather(spans, instance), instance, box_width], axis=1)
    table, setup = _materialize([table, setup], zero)
    rows, setup = _materialize([tf.gather(table, local), tf.gather(setup, local)], zero)
    t = s + tf.range(chunk)
    across = tf.maximum(rows[:, 3], 1)
    offset = t - rows[:, 0]
    # offset // across in float32 (exact below 2^24; integer division is slow on CPUs).
    down = tf.cast(tf.math.floor((tf.cast(offset, tf.float32) + 0.5) / tf.cast(across, tf.float32)), tf.int32)
    row = tf.clip_by_value(rows[:, 2] + down, 0, height - 1)
    start = _row_starts(setup, rows[:, 1], rows[:, 5], across, row, width, height)
    col = tf.clip_by_value(start + offset - down * across, 0, width - 1)
    # Fusion barriers: without them XLA recomputes the row starts in every kernel that reads the pixel, and the
    # keys in the scatter (edge-on ids 198 -> 147 ms, smooth 33 -> 28 ms at batch 32 on the 2-core CI CPU).
    col, row = _materialize([col, row], zero)
    image, face = rows[:, 4] // num_faces, rows[:, 4] % num_faces
    keys = _fragment_keys(setup, face, col, row, width, height, zero)
    keys = tf.where(t < limit, keys, tf.constant(_EMPTY, tf.int64))
    flat = (image * height + row) * width + col
    keys, flat = _materialize([keys, flat], zero)
    return limit, tf.tensor_scatter_nd_min(zbuffer, flat[:, None], keys)

  def loop(instances_per_chunk):
    window = max(1, chunk // instances_per_chunk)  # instances set up per iteration
    body = functools.partial(candidates, window=window)
    return tf.while_loop(lambda s, _: s < total, body, (tf.constant(0), zbuffer))[1]

  sparse = _is_sparse(total, used)
  return tf.cond(sparse, lambda: loop(_SPARSE_INSTANCES_PER_CHUNK), lambda: loop(_DENSE_INSTANCES_PER_CHUNK))


def _triangle_ids(clip, faces, height, width, chunk):
  """The backend's body (see `triangle_ids`)."""
  batch = tf.shape(clip)[0]
  if None not in (clip.shape[0], height, width):
    # Small scenes: a chunk near their candidate count (~1-4 per pixel for meshes) avoids idle lanes.
    chunk = min(chunk, max(256, 1 << int(4 * clip.shape[0] * height * width - 1).bit_length()))
  if faces.shape[0] == 0 or clip.shape[0] == 0:
    zbuffer = tf.fill([batch * height * width], tf.constant(_EMPTY, tf.int64))
  else:
    zbuffer = _zbuffer(tf.reshape(clip, [-1, 4]), faces, batch, height, width, chunk)
  low_word = tf.cast(tf.bitwise.bitwise_and(zbuffer, tf.constant(0xFFFFFFFF, tf.int64)), tf.int32)
  ids = tf.where(zbuffer == _EMPTY, tf.constant(-1, tf.int32), low_word)
  return tf.reshape(ids, [batch, height, width])


def _scene_candidates(clip, faces, height, width):
  """Per (image, triangle) instance of a scene: candidates in its box and in its row spans ([B F] int32 each)."""
  clip = tf.convert_to_tensor(clip, tf.float32)
  faces = tf.convert_to_tensor(faces, tf.int32)
  batch, num_vertices = clip.shape[0], clip.shape[1]
  index = tf.reshape((tf.range(batch) * num_vertices)[:, None, None] + faces[None], [-1, 3])
  bounds, pixels = _vertex_bounds(tf.reshape(clip, [-1, 4]), height, width)
  _, _, ex, ey = _boxes(bounds, index, height, width)
  return ex * ey, _span_widths(pixels, index, ex, width) * ey


def candidate_counts(clip, faces, height, width):
  """Candidate fragments the backend tests for a scene: (in the triangles' boxes, in their row spans), per image.

  The second is the work done; the first what a box rasterizer (such as the kernel) would test. For the benchmark
  and the tests; same arguments as `triangle_ids`.
  """
  boxes, spans = _scene_candidates(clip, faces, height, width)
  batch = int(np.shape(clip)[0])
  return float(tf.reduce_sum(boxes)) / batch, float(tf.reduce_sum(spans)) / batch


def is_sparse(clip, faces, height, width) -> bool:
  """Whether `triangle_ids` enumerates this scene with its window for slivers (many candidates per non-empty
  triangle) rather than its dense one. For the tests and the benchmark; same arguments as `triangle_ids`."""
  _, spans = _scene_candidates(clip, faces, height, width)
  return bool(_is_sparse(tf.reduce_sum(spans), tf.math.count_nonzero(spans, dtype=tf.int32)))


@functools.lru_cache(maxsize=None)
def _function(height, width, chunk, jit_compile):
  """One graph function per image size, chunk and compilation: traced once per input shape and then called, from
  every graph that rasterizes, as a function call. Inlined, the loop's graph costs about a second of Python to trace
  at every call site (a 4-step debug training rasterizes at 17 of them)."""
  return graph.function(
    functools.partial(_triangle_ids, height=height, width=width, chunk=chunk), jit_compile=jit_compile
  )  # XLA compiles per shape anyway; static shapes size the chunks


def triangle_ids(clip, faces, height, width, jit_compile=True, chunk=DEFAULT_CHUNK):
  """Nearest covering triangle at each pixel centre, decided as TF-Graphics' kernel does, in TensorFlow ops.

  Args:
    clip: [B, V, 4] float32 clip-space vertices (see `rasterizer.clip_space`).
    faces: [F, 3] int32 vertex ids.
    height, width: image size in pixels.
    chunk: candidate fragments (pixel centres in triangles' boxes) per loop iteration, about 200 bytes of memory
      each; any value gives the same ids. Small scenes use a smaller chunk automatically.
    jit_compile: compile with XLA (inside an XLA-compiled caller it is inlined either way); False traces plain ops,
      for servers without an XLA JIT (TF Serving disables it on CPU by default).

  Returns:
    [B, H, W] int32 triangle ids, -1 where no triangle covers the pixel centre.
  """
  height, width, chunk = int(height), int(width), int(chunk)
  if chunk < 1:
    raise ValueError(f"chunk must be positive, got {chunk}")
  if height < 1 or width < 1:
    raise ValueError(f"height and width must be positive, got {height}x{width}")
  clip = tf.convert_to_tensor(clip, tf.float32)
  faces = tf.convert_to_tensor(faces, tf.int32)
  if clip.shape.rank != 3 or clip.shape[-1] != 4:
    raise ValueError(f"clip must have shape [B, V, 4], got {clip.shape}")
  if faces.shape.rank != 2 or faces.shape[-1] != 3:
    raise ValueError(f"faces must have shape [F, 3], got {faces.shape}")
  # Integer ids carry no gradient; outside the tape, a call records nothing (under a tape TensorFlow would otherwise
  # build the function's gradient graph at every call site).
  return _function(height, width, chunk, bool(jit_compile))(tf.stop_gradient(clip), faces)
