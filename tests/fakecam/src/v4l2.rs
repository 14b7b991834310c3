//! The slice of `linux/videodev2.h` this fake camera speaks: struct layouts
//! for 64-bit Linux (x86_64, aarch64; little-endian) and ioctl numbers.
//! Written from the header's definitions; sizes and a few request numbers
//! are checked at compile time against the values the kernel uses.

#![allow(dead_code)]

use std::mem::size_of;

// ---- ioctl numbers (asm-generic/ioctl.h: dir:2 | size:14 | type:8 | nr:8) ----

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr
}
const fn ior<T>(nr: u32) -> u32 {
    ioc(IOC_READ, nr, size_of::<T>())
}
const fn iow<T>(nr: u32) -> u32 {
    ioc(IOC_WRITE, nr, size_of::<T>())
}
const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size_of::<T>())
}

pub const VIDIOC_QUERYCAP: u32 = ior::<Capability>(0);
pub const VIDIOC_ENUM_FMT: u32 = iowr::<FmtDesc>(2);
pub const VIDIOC_G_FMT: u32 = iowr::<Format>(4);
pub const VIDIOC_S_FMT: u32 = iowr::<Format>(5);
pub const VIDIOC_REQBUFS: u32 = iowr::<RequestBuffers>(8);
pub const VIDIOC_QUERYBUF: u32 = iowr::<Buffer>(9);
pub const VIDIOC_QBUF: u32 = iowr::<Buffer>(15);
pub const VIDIOC_DQBUF: u32 = iowr::<Buffer>(17);
pub const VIDIOC_STREAMON: u32 = iow::<i32>(18);
pub const VIDIOC_STREAMOFF: u32 = iow::<i32>(19);
pub const VIDIOC_G_PARM: u32 = iowr::<StreamParm>(21);
pub const VIDIOC_S_PARM: u32 = iowr::<StreamParm>(22);
pub const VIDIOC_ENUMINPUT: u32 = iowr::<Input>(26);
pub const VIDIOC_G_CTRL: u32 = iowr::<Control>(27);
pub const VIDIOC_S_CTRL: u32 = iowr::<Control>(28);
pub const VIDIOC_QUERYCTRL: u32 = iowr::<QueryCtrl>(36);
pub const VIDIOC_QUERYMENU: u32 = iowr::<QueryMenu>(37);
pub const VIDIOC_G_INPUT: u32 = ior::<i32>(38);
pub const VIDIOC_S_INPUT: u32 = iowr::<i32>(39);
pub const VIDIOC_TRY_FMT: u32 = iowr::<Format>(64);
pub const VIDIOC_G_EXT_CTRLS: u32 = iowr::<ExtControls>(71);
pub const VIDIOC_S_EXT_CTRLS: u32 = iowr::<ExtControls>(72);
pub const VIDIOC_TRY_EXT_CTRLS: u32 = iowr::<ExtControls>(73);
pub const VIDIOC_ENUM_FRAMESIZES: u32 = iowr::<FrmSizeEnum>(74);
pub const VIDIOC_ENUM_FRAMEINTERVALS: u32 = iowr::<FrmIvalEnum>(75);
pub const VIDIOC_QUERY_EXT_CTRL: u32 = iowr::<QueryExtCtrl>(103);

// Request numbers as the kernel headers give them on 64-bit Linux: a wrong
// field or padding above changes a size, and the build fails here.
const _: () = {
    assert!(VIDIOC_QUERYCAP == 0x8068_5600);
    assert!(VIDIOC_ENUM_FMT == 0xc040_5602);
    assert!(VIDIOC_G_FMT == 0xc0d0_5604);
    assert!(VIDIOC_REQBUFS == 0xc014_5608);
    assert!(VIDIOC_QUERYBUF == 0xc058_5609);
    assert!(VIDIOC_DQBUF == 0xc058_5611);
    assert!(VIDIOC_STREAMON == 0x4004_5612);
    assert!(VIDIOC_S_PARM == 0xc0cc_5616);
    assert!(VIDIOC_ENUMINPUT == 0xc050_561a);
    assert!(VIDIOC_QUERYCTRL == 0xc044_5624);
    assert!(VIDIOC_QUERYMENU == 0xc02c_5625);
    assert!(VIDIOC_G_EXT_CTRLS == 0xc020_5647);
    assert!(VIDIOC_ENUM_FRAMESIZES == 0xc02c_564a);
    assert!(VIDIOC_ENUM_FRAMEINTERVALS == 0xc034_564b);
    assert!(VIDIOC_QUERY_EXT_CTRL == 0xc0e8_5667);
    assert!(size_of::<ExtControl>() == 20);
};

// ---- constants ----

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_NONE: u32 = 1;
pub const COLORSPACE_SRGB: u32 = 8;
pub const PIX_FMT_PRIV_MAGIC: u32 = 0xfeed_cafe;

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

pub const FMT_FLAG_COMPRESSED: u32 = 0x0001;
pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

pub const BUF_FLAG_MAPPED: u32 = 0x0000_0001;
pub const BUF_FLAG_QUEUED: u32 = 0x0000_0002;
pub const BUF_FLAG_DONE: u32 = 0x0000_0004;
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
pub const BUF_FLAG_TSTAMP_SRC_SOE: u32 = 0x0001_0000;
pub const BUF_CAP_SUPPORTS_MMAP: u32 = 0x0000_0001;

pub const CTRL_TYPE_INTEGER: u32 = 1;
pub const CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;
pub const CTRL_FLAG_NEXT_COMPOUND: u32 = 0x4000_0000;
pub const CTRL_CLASS_USER: u32 = 0x0098_0000;
pub const CTRL_WHICH_CUR_VAL: u32 = 0;
pub const CTRL_WHICH_DEF_VAL: u32 = 0x0f00_0000;
pub const CID_BRIGHTNESS: u32 = 0x0098_0900;
pub const CID_CONTRAST: u32 = 0x0098_0901;

pub const INPUT_TYPE_CAMERA: u32 = 2;

pub const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}
pub const PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
pub const PIX_FMT_YUYV: u32 = fourcc(b"YUYV");

// ---- structs ----

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `v4l2_frmsizeenum`; `size` is the discrete/stepwise union (6 words).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub size: [u32; 6],
    pub reserved: [u32; 2],
}

/// `v4l2_frmivalenum`; `interval` is the discrete/stepwise union (6 words).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub interval: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `v4l2_format`: the union holds pointers in some members (v4l2_window),
/// so it is 8-aligned and starts at offset 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}
#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub raw: [u8; 200],
    _align: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

/// `v4l2_streamparm`: only 32-bit members, so the union starts at offset 4.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub type_: u32,
    pub parm: ParmUnion,
}
#[repr(C)]
#[derive(Clone, Copy)]
pub union ParmUnion {
    pub capture: CaptureParm,
    pub raw: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

/// `struct timeval` on 64-bit Linux.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: Timeval,
    pub timecode: Timecode,
    pub sequence: u32,
    pub memory: u32,
    /// Union of offset (u32, the first bytes: little-endian), userptr,
    /// planes pointer and dmabuf fd.
    pub m: u64,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct QueryCtrl {
    pub id: u32,
    pub type_: u32,
    pub name: [u8; 32],
    pub minimum: i32,
    pub maximum: i32,
    pub step: i32,
    pub default_value: i32,
    pub flags: u32,
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct QueryExtCtrl {
    pub id: u32,
    pub type_: u32,
    pub name: [u8; 32],
    pub minimum: i64,
    pub maximum: i64,
    pub step: u64,
    pub default_value: i64,
    pub flags: u32,
    pub elem_size: u32,
    pub elems: u32,
    pub nr_of_dims: u32,
    pub dims: [u32; 4],
    pub reserved: [u32; 32],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Control {
    pub id: u32,
    pub value: i32,
}

/// `v4l2_ext_control` is `__attribute__((packed))`: the value union sits at
/// offset 12. Writing `value64` sign-extended also sets the 32-bit `value`
/// (its low bytes, little-endian).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ExtControl {
    pub id: u32,
    pub size: u32,
    pub reserved2: u32,
    pub value64: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtControls {
    /// `ctrl_class` / `which`.
    pub which: u32,
    pub count: u32,
    pub error_idx: u32,
    pub request_fd: i32,
    pub reserved: u32,
    pub controls: *mut ExtControl,
}

/// `v4l2_querymenu` (packed; name and value share 32 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct QueryMenu {
    pub id: u32,
    pub index: u32,
    pub name: [u8; 32],
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Input {
    pub index: u32,
    pub name: [u8; 32],
    pub type_: u32,
    pub audioset: u32,
    pub tuner: u32,
    pub std: u64,
    pub status: u32,
    pub capabilities: u32,
    pub reserved: [u32; 3],
}

/// A NUL-padded fixed-size string field.
pub fn cstr_field<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s[..n]);
    out
}
