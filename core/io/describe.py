"""A human-readable summary of a photo file (``refocus photo-info``)."""
from __future__ import annotations


def describe(path) -> list[str]:
    """Lines describing a photo: format, size, bit depth, colour space, camera and lens."""
    from .read import read_photo
    p = read_photo(path)
    h, w = p.linear.shape[:2]
    lines = [f"{p.path}: {p.format}, {w}x{h} (as displayed, EXIF orientation {p.meta.get('orientation', 1)}), "
             f"{p.bits}-bit {'grey' if p.grey else 'RGB'}{' + alpha' if p.alpha is not None else ''}",
             f"colour: {p.space.name}{' (embedded profile)' if p.icc else ' (no profile: sRGB)'}"
             + (f"; {p.space.note}" if p.space.note else "")]
    c = p.camera
    if c and (c.make or c.model):
        same = c.make and c.model and c.model.lower().startswith(c.make.split()[0].lower())
        name = c.model if same else " ".join(x for x in (c.make, c.model) if x)
        lines.append(f"camera: {name}")
        if c.lens:
            lines.append(f"lens: {c.lens}")
        parts = []
        if c.focal_length_mm:
            eq = f" ({c.focal_length_35mm:.0f} mm in 35 mm terms, crop {c.crop_factor:.2f} from {c.crop_source})" \
                if c.focal_length_35mm else ""
            parts.append(f"{c.focal_length_mm:g} mm{eq}")
        if c.f_number:
            parts.append(f"f/{c.f_number:g}")
        if c.exposure_text:
            parts.append(c.exposure_text)
        if c.iso:
            parts.append(f"ISO {c.iso}")
        if parts:
            lines.append("exposure: " + ", ".join(parts))
        if c.sensor_width_mm:
            lines.append(f"sensor (estimate): {c.sensor_width_mm:.1f} x {c.sensor_height_mm:.1f} mm")
        if c.subject_distance_m:
            lines.append(f"subject distance: {c.subject_distance_m:g} m")
        if c.datetime_original:
            lines.append(f"taken: {c.datetime_original}")
        if c.gps_latitude is not None:
            lines.append(f"GPS: {c.gps_latitude:.6f}, {c.gps_longitude:.6f}"
                         + (f", {c.gps_altitude_m:.0f} m" if c.gps_altitude_m is not None else ""))
    else:
        lines.append("camera: no EXIF camera data")
    return lines
