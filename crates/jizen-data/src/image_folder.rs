//! Image folders: `root/<class name>/<image>.png|jpg|jpeg`, one sub-folder per class. Classes are
//! numbered in the sorted order of their folder names, images within a class in the sorted order
//! of their file names, so the same folder always loads the same way.

use std::path::{Path, PathBuf};

use crate::{DataError, Images};

/// How to load an image folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFolderOptions {
    /// Channels of the loaded images: 1 (grey) or 3 (RGB); images are converted as needed.
    pub channels: usize,
    /// Resize every image to `(width, height)` (bilinear filter). Without it, all images must
    /// already have the same size.
    pub resize: Option<(u32, u32)>,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions { channels: 3, resize: None }
    }
}

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::new(dir, format!("cannot list: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| DataError::new(dir, format!("cannot list: {e}")))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Loads every image under `root`, labelled by its class folder. Errors: no class folders, a
/// class folder without images, an image that cannot be decoded, an image whose size differs
/// from the first one (when not resizing), a channel count other than 1 or 3.
pub fn load_image_folder(root: &Path, options: &ImageFolderOptions) -> Result<Images, DataError> {
    if options.channels != 1 && options.channels != 3 {
        return Err(DataError::new(root, format!("{} channels requested: expected 1 or 3", options.channels)));
    }
    let class_dirs: Vec<PathBuf> = sorted_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        return Err(DataError::new(root, "no class folders: expected root/<class name>/<image files>"));
    }
    let mut classes = Vec::new();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    // The size every image must have, and the file that set it.
    let mut size: Option<((u32, u32), PathBuf)> = options.resize.map(|s| (s, PathBuf::from("--resize")));
    for (label, dir) in class_dirs.iter().enumerate() {
        classes.push(dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let files: Vec<PathBuf> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            return Err(DataError::new(dir, format!("class folder has no images (looked for {EXTENSIONS:?})")));
        }
        for file in files {
            let mut img = image::ImageReader::open(&file)
                .map_err(|e| DataError::new(&file, format!("cannot read: {e}")))?
                .with_guessed_format()
                .map_err(|e| DataError::new(&file, format!("cannot read: {e}")))?
                .decode()
                .map_err(|e| DataError::new(&file, format!("cannot decode image: {e}")))?;
            if let Some((w, h)) = options.resize {
                if (img.width(), img.height()) != (w, h) {
                    img = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
                }
            }
            let this = (img.width(), img.height());
            match &size {
                None => size = Some((this, file.clone())),
                Some((first, first_file)) if *first != this => {
                    return Err(DataError::new(
                        &file,
                        format!(
                            "image is {}x{} but {} is {}x{} (width x height): all images must share one size, \
                             or pass a resize",
                            this.0,
                            this.1,
                            first_file.display(),
                            first.0,
                            first.1
                        ),
                    ));
                }
                Some(_) => {}
            }
            push_channel_major(&img, options.channels, &mut pixels);
            labels.push(label as u32);
        }
    }
    let ((width, height), _) = size.unwrap_or(((0, 0), PathBuf::new()));
    Ok(Images { channels: options.channels, height: height as usize, width: width as usize, pixels, labels, classes })
}

/// Appends the image's pixels as `[c, h, w]` (the decoder gives `[h, w, c]`).
fn push_channel_major(img: &image::DynamicImage, channels: usize, out: &mut Vec<u8>) {
    let interleaved = if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    for c in 0..channels {
        out.extend(interleaved.iter().skip(c).step_by(channels));
    }
}
