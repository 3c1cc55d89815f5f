//! Just enough of a BTF reader to find where kernel structure fields live
//! on the running kernel (`/sys/kernel/btf/vmlinux`) and to name enum
//! values (drop reasons). The tracer's programs read kernel memory at these
//! offsets, which makes them work across kernel versions without CO-RE.

use std::{collections::HashMap, path::Path};

use super::TraceError;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    ty: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
enum Type {
    /// struct or union, with its members.
    Composite {
        members: Vec<Member>,
    },
    /// typedef, const, volatile, restrict, type tag: refers to `ty`.
    Alias {
        ty: u32,
    },
    Enum {
        name: String,
        values: Vec<(String, i64)>,
    },
    Other,
}

/// A parsed BTF blob.
#[derive(Debug)]
pub struct Btf {
    /// Index = type id (0 is `void`).
    types: Vec<Type>,
    by_name: HashMap<String, Vec<u32>>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn string(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or_default();
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Self, TraceError> {
        Self::load(Path::new(VMLINUX))
    }

    pub fn load(path: &Path) -> Result<Self, TraceError> {
        let bytes = std::fs::read(path).map_err(|e| TraceError::Btf {
            what: format!(
                "cannot read {} ({e}): the kernel needs CONFIG_DEBUG_INFO_BTF=y for shortpath trace",
                path.display()
            ),
        })?;
        Self::parse(&bytes)
    }

    pub fn parse(b: &[u8]) -> Result<Self, TraceError> {
        let bad = |what: &str| TraceError::Btf {
            what: format!("malformed BTF: {what}"),
        };
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err(bad("no little-endian BTF header"));
        }
        let field = |i: usize| u32_at(b, 4 + 4 * i).ok_or_else(|| bad("short header"));
        let hdr_len = field(0)? as usize;
        let (type_off, type_len) = (field(1)? as usize, field(2)? as usize);
        let (str_off, str_len) = (field(3)? as usize, field(4)? as usize);
        let types_raw = b
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| bad("type section out of bounds"))?;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| bad("string section out of bounds"))?;

        let mut types = vec![Type::Other];
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        let mut at = 0;
        while at + 12 <= types_raw.len() {
            let word = |i: usize| u32_at(types_raw, at + 4 * i).ok_or_else(|| bad("short type"));
            let (name_off, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let name = string(strings, name_off);
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + 12 * i;
                        let w = |j: usize| {
                            u32_at(types_raw, m + 4 * j).ok_or_else(|| bad("short member"))
                        };
                        let offset = w(2)?;
                        members.push(Member {
                            name: string(strings, w(0)?),
                            ty: w(1)?,
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    at += 12 * vlen;
                    Type::Composite { members }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let step = if kind == KIND_ENUM { 8 } else { 12 };
                    let mut values = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + step * i;
                        let w = |j: usize| {
                            u32_at(types_raw, m + 4 * j).ok_or_else(|| bad("short enum"))
                        };
                        let v = if kind == KIND_ENUM {
                            w(1)? as i32 as i64
                        } else {
                            ((w(2)? as u64) << 32 | w(1)? as u64) as i64
                        };
                        values.push((string(strings, w(0)?), v));
                    }
                    at += step * vlen;
                    Type::Enum {
                        name: name.clone(),
                        values,
                    }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias { ty: size_or_type }
                }
                KIND_INT | KIND_VAR | KIND_DECL_TAG => {
                    at += 4;
                    Type::Other
                }
                KIND_ARRAY => {
                    at += 12;
                    Type::Other
                }
                KIND_FUNC_PROTO => {
                    at += 8 * vlen;
                    Type::Other
                }
                KIND_DATASEC => {
                    at += 12 * vlen;
                    Type::Other
                }
                _ => Type::Other,
            };
            if !name.is_empty() {
                by_name.entry(name).or_default().push(types.len() as u32);
            }
            types.push(ty);
        }
        Ok(Self { types, by_name })
    }

    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            match self.types.get(id as usize)? {
                Type::Alias { ty } => id = *ty,
                t => return Some(t),
            }
        }
        None
    }

    fn composite(&self, name: &str) -> Option<&[Member]> {
        // A struct of that name, or a typedef of one (`possible_net_t`).
        self.by_name
            .get(name)?
            .iter()
            .find_map(|&id| match self.resolve(id) {
                Some(Type::Composite { members, .. }) if !members.is_empty() => {
                    Some(members.as_slice())
                }
                _ => None,
            })
    }

    /// Bit offset of member `name` in `members`, looking through anonymous
    /// structs and unions; with the member's type id.
    fn find(&self, members: &[Member], name: &str) -> Option<(u32, u32)> {
        for m in members {
            if m.name == name {
                return Some((m.bit_offset, m.ty));
            }
            if m.name.is_empty() {
                if let Some(Type::Composite { members: inner, .. }) = self.resolve(m.ty) {
                    if let Some((off, ty)) = self.find(inner, name) {
                        return Some((m.bit_offset + off, ty));
                    }
                }
            }
        }
        None
    }

    /// Byte offset of `path` (members, possibly nested) in `struct name`.
    pub fn offset(&self, name: &str, path: &[&str]) -> Result<u32, TraceError> {
        let missing = || TraceError::Btf {
            what: format!(
                "struct {name} has no field {} on this kernel",
                path.join(".")
            ),
        };
        let mut members = self.composite(name).ok_or_else(missing)?;
        let mut bits = 0;
        for (i, field) in path.iter().enumerate() {
            let (off, ty) = self.find(members, field).ok_or_else(missing)?;
            bits += off;
            if i + 1 < path.len() {
                members = match self.resolve(ty) {
                    Some(Type::Composite { members, .. }) => members,
                    _ => return Err(missing()),
                };
            }
        }
        if bits % 8 != 0 {
            return Err(missing());
        }
        Ok(bits / 8)
    }

    /// Values of `enum name`, value → name.
    pub fn enum_values(&self, name: &str) -> HashMap<i64, String> {
        let Some(ids) = self.by_name.get(name) else {
            return HashMap::new();
        };
        ids.iter()
            .find_map(|&id| match &self.types[id as usize] {
                Type::Enum { name: n, values } if n == name => {
                    Some(values.iter().map(|(k, v)| (*v, k.clone())).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: `int`, `struct inner { int a; int b; }`,
    /// `struct outer { int x; union { struct inner in; int y; }; }`,
    /// `enum e { E_ONE = 1 }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0y\0e\0E_ONE\0".to_vec();
        let s = |name: &str| {
            let hay = String::from_utf8_lossy(&strings).into_owned();
            hay.find(&format!("\0{name}\0"))
                .map(|i| i as u32 + 1)
                .unwrap()
        };
        let mut t: Vec<u32> = Vec::new();
        // 1: int
        t.extend([s("int"), KIND_INT << 24, 4, 32]);
        // 2: struct inner { a @0, b @32 }
        t.extend([s("inner"), KIND_STRUCT << 24 | 2, 8]);
        t.extend([s("a"), 1, 0, s("b"), 1, 32]);
        // 3: anonymous union { inner in; int y; }
        t.extend([0, KIND_UNION << 24 | 2, 8]);
        t.extend([s("in"), 2, 0, s("y"), 1, 0]);
        // 4: struct outer { int x @0; union @64 }
        t.extend([s("outer"), KIND_STRUCT << 24 | 2, 16]);
        t.extend([s("x"), 1, 0, 0, 3, 64]);
        // 5: enum e { E_ONE = 1 }
        t.extend([s("e"), KIND_ENUM << 24 | 1, 4]);
        t.extend([s("E_ONE"), 1]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(w.to_le_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_nested_fields_through_anonymous_unions() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.offset("outer", &["x"]).unwrap(), 0);
        assert_eq!(btf.offset("outer", &["y"]).unwrap(), 8);
        assert_eq!(btf.offset("outer", &["in", "b"]).unwrap(), 12);
        assert_eq!(btf.offset("inner", &["b"]).unwrap(), 4);
        assert!(btf.offset("outer", &["z"]).is_err());
        assert!(btf.offset("nope", &["x"]).is_err());
        assert_eq!(
            btf.enum_values("e").get(&1).map(String::as_str),
            Some("E_ONE")
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, not even close").is_err());
    }

    #[test]
    fn reads_this_kernels_sk_buff_when_available() {
        let Ok(btf) = Btf::kernel() else { return };
        let dev = btf.offset("sk_buff", &["dev"]).unwrap();
        let len = btf.offset("sk_buff", &["len"]).unwrap();
        assert!(dev < len, "dev @{dev} comes before len @{len}");
        assert!(btf.offset("net", &["ns", "inum"]).is_ok());
    }
}
