// Placeholder until the registry client lands (issue 6).
import { GcrError } from "../errors.ts";
const todo = async (): Promise<number> => { throw new GcrError("not implemented yet"); };
export const pullCommand = todo, img2rootfsCommand = todo, imagesCommand = todo, rmiCommand = todo, loginCommand = todo, logoutCommand = todo;
