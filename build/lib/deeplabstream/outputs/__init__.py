"""Raw recording: video files, frames tables and the session folder."""
