"""The subset of Waymo's ``Frame`` proto that streetsynth reads, with the official field numbers.

The official ``waymo-open-dataset-tf-*`` wheels pin TensorFlow and old NumPy/pyarrow, so we carry
our own schema. It is built as a descriptor at import time (no protoc step) under its own proto
package, so it can live beside the official one in one process. Field numbers and wire types
match ``waymo_open_dataset/dataset.proto`` and ``label.proto``; enum fields are read as int32,
which has the same varint encoding. Fields we do not declare are kept as unknown fields by
protobuf and ignored. ``tests/test_frame_proto.py`` round-trips against the official classes.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "streetsynth.waymo"
F = descriptor_pb2.FieldDescriptorProto

# message -> [(field name, number, type, label, message type name or None)]
_OPT, _REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "Transform": [("transform", 1, F.TYPE_DOUBLE, _REP, None)],
    "CameraCalibration": [
        ("name", 1, F.TYPE_INT32, _OPT, None),
        ("intrinsic", 2, F.TYPE_DOUBLE, _REP, None),
        ("extrinsic", 3, F.TYPE_MESSAGE, _OPT, "Transform"),
        ("width", 4, F.TYPE_INT32, _OPT, None),
        ("height", 5, F.TYPE_INT32, _OPT, None),
    ],
    "Stats": [
        ("time_of_day", 2, F.TYPE_STRING, _OPT, None),
        ("location", 3, F.TYPE_STRING, _OPT, None),
        ("weather", 4, F.TYPE_STRING, _OPT, None),
    ],
    "Context": [
        ("name", 1, F.TYPE_STRING, _OPT, None),
        ("camera_calibrations", 2, F.TYPE_MESSAGE, _REP, "CameraCalibration"),
        ("stats", 4, F.TYPE_MESSAGE, _OPT, "Stats"),
    ],
    "InstanceIDToGlobalIDMapping": [
        ("local_instance_id", 1, F.TYPE_INT32, _OPT, None),
        ("global_instance_id", 2, F.TYPE_INT32, _OPT, None),
        ("is_tracked", 3, F.TYPE_BOOL, _OPT, None),
    ],
    "CameraSegmentationLabel": [
        ("panoptic_label_divisor", 1, F.TYPE_INT32, _OPT, None),
        ("panoptic_label", 2, F.TYPE_BYTES, _OPT, None),
        ("instance_id_to_global_id_mapping", 3, F.TYPE_MESSAGE, _REP, "InstanceIDToGlobalIDMapping"),
        ("sequence_id", 4, F.TYPE_STRING, _OPT, None),
    ],
    "CameraImage": [
        ("name", 1, F.TYPE_INT32, _OPT, None),
        ("image", 2, F.TYPE_BYTES, _OPT, None),
        ("camera_segmentation_label", 10, F.TYPE_MESSAGE, _OPT, "CameraSegmentationLabel"),
    ],
    "Box": [
        ("center_x", 1, F.TYPE_DOUBLE, _OPT, None),
        ("center_y", 2, F.TYPE_DOUBLE, _OPT, None),
        ("center_z", 3, F.TYPE_DOUBLE, _OPT, None),
        ("width", 4, F.TYPE_DOUBLE, _OPT, None),
        ("length", 5, F.TYPE_DOUBLE, _OPT, None),
        ("height", 6, F.TYPE_DOUBLE, _OPT, None),
        ("heading", 7, F.TYPE_DOUBLE, _OPT, None),
    ],
    "Label": [
        ("box", 1, F.TYPE_MESSAGE, _OPT, "Box"),
        ("type", 3, F.TYPE_INT32, _OPT, None),
        ("id", 4, F.TYPE_STRING, _OPT, None),
    ],
    "CameraLabels": [
        ("name", 1, F.TYPE_INT32, _OPT, None),
        ("labels", 2, F.TYPE_MESSAGE, _REP, "Label"),
    ],
    "Frame": [
        ("context", 1, F.TYPE_MESSAGE, _OPT, "Context"),
        ("timestamp_micros", 2, F.TYPE_INT64, _OPT, None),
        ("images", 4, F.TYPE_MESSAGE, _REP, "CameraImage"),
        ("camera_labels", 8, F.TYPE_MESSAGE, _REP, "CameraLabels"),
    ],
}


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="streetsynth/waymo_frame.proto", package=_PACKAGE, syntax="proto2")
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, ftype, label, type_name in fields:
            f = msg.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES}


_CLASSES = _build()
Frame = _CLASSES["Frame"]
Context = _CLASSES["Context"]
CameraCalibration = _CLASSES["CameraCalibration"]
CameraImage = _CLASSES["CameraImage"]
CameraSegmentationLabel = _CLASSES["CameraSegmentationLabel"]
CameraLabels = _CLASSES["CameraLabels"]
Label = _CLASSES["Label"]
Box = _CLASSES["Box"]
Transform = _CLASSES["Transform"]

#: ``Label.Type`` values.
TYPE_UNKNOWN, TYPE_VEHICLE, TYPE_PEDESTRIAN, TYPE_SIGN, TYPE_CYCLIST = range(5)

__all__ = [
    "Frame", "Context", "CameraCalibration", "CameraImage", "CameraSegmentationLabel", "CameraLabels",
    "Label", "Box", "Transform", "TYPE_UNKNOWN", "TYPE_VEHICLE", "TYPE_PEDESTRIAN", "TYPE_SIGN", "TYPE_CYCLIST",
]
