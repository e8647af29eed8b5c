// The entity types a node knows: the classes given at start, checked once, and the lookup that
// turns what a caller names (a class, its definition or a type name) into a definition.
import { ID_PATTERN } from "@keyhold/core";
import { defineEntity, type EntityClass, type EntityDefinition, type TypeName } from "./entity.js";
import { InvalidEntityError, InvalidRequestError } from "./errors.js";

export class EntityRegistry {
  /** The registered definitions by type name. */
  readonly types: ReadonlyMap<string, EntityDefinition>;

  private constructor(types: ReadonlyMap<string, EntityDefinition>) {
    this.types = types;
  }

  /** Defines every class; two classes under one type, or a node with none, is an error. */
  static of(classes: readonly EntityClass[], client: boolean): EntityRegistry {
    const types = new Map<string, EntityDefinition>();
    for (const cls of classes) {
      const def = defineEntity(cls);
      const existing = types.get(def.type);
      if (existing && existing.cls !== cls) {
        throw new InvalidEntityError(
          `Two entity classes use type ${JSON.stringify(def.type)}: ${existing.cls.name} and ${cls.name}`,
        );
      }
      types.set(def.type, def);
    }
    if (!client && types.size === 0) {
      throw new InvalidEntityError(
        "Sharding.start needs at least one entity class in `entities` (use Sharding.connect for a client)",
      );
    }
    return new EntityRegistry(types);
  }

  /** True when some registered type keeps more than one copy. */
  get replicated(): boolean {
    return [...this.types.values()].some((d) => d.replicas > 1);
  }

  /** Copies kept of entities of `type` (1 for a type not registered here). */
  replicasOf(type: string): number {
    return this.types.get(type)?.replicas ?? 1;
  }

  /**
   * The registered definition of a class, or a fresh one for a client addressing an unregistered
   * class; for a type name, its registered definition or just the name.
   */
  resolve(def: EntityDefinition | EntityClass | string): EntityDefinition | TypeName {
    if (typeof def === "string") {
      if (!ID_PATTERN.test(def)) {
        throw new InvalidRequestError(
          `Expected an entity type name of 1-64 letters, digits, \`_\` or \`-\`, got ${JSON.stringify(def.slice(0, 80))}`,
        );
      }
      return this.types.get(def) ?? { type: def, handlers: undefined };
    }
    if ("handlers" in def) return def;
    const known = this.types.get(def.type);
    if (known && known.cls !== def) {
      throw new InvalidEntityError(
        `Entity type ${JSON.stringify(def.type)} is registered here by class ${known.cls.name}, not ${def.name}`,
      );
    }
    return known ?? defineEntity(def);
  }
}
