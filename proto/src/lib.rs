//! tfplugin6 and go-plugin protocol types.
