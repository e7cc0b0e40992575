"""EdgeTeach Studio (`trainer studio`): the Teachable Machine steps in a local web page, on the same project
folders `trainer train` reads. One module per job: `limits` (every bound and default), `projects` (folders,
classes, samples), `uploads` (checking and saving an image), `jobs` (the training queue), `worker` (one
training, in its own process), `auth` (the class password), `app` (the HTTP routes), `server` (uvicorn)."""
